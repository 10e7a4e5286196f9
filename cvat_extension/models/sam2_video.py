"""SAM2 on in-memory frames: clip propagation and frame-by-frame tracking.

Two ways to run the same model, for two callers:

- :class:`Sam2VideoPropagator` propagates prompts (box, polygon or mask on one frame) over
  a clip, forward or backward, with the stock ``SAM2VideoPredictor`` loop. Frames come
  from memory (numpy arrays or a lazy sequence): the inference state is built directly
  instead of through ``init_state``, which only reads JPEG folders or mp4 files, so there
  is no JPEG round-trip and no temp folder. Used by ``cvat-track propagate``.
- :class:`Sam2StreamTracker` tracks one frame per call with a small per-object memory (the
  conditioning frame plus the last ``num_maskmem`` frames, as CVAT's own SAM2 agent keeps),
  which is what CVAT's interactive tracker protocol needs: the Nuclio function and the
  cvat-sdk tracking function both sit on it. Memories serialise to bytes so that several
  function replicas can share them through Redis.

torch and sam2 are imported lazily through :func:`require`, so importing this module is
cheap; nothing is downloaded. A checkpoint path is required unless the caller asks for
random weights explicitly (tests, benchmarks): silently tracking with an untrained model
would hand annotators garbage.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import pickle
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvat_extension._deps import require
from cvat_extension.core.masks import masks_to_xyxy, polygon_to_mask, rle_to_mask
from cvat_extension.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

__all__ = [
    "ObjectMemory",
    "ObjectPrompt",
    "PreprocessedFrame",
    "PropagatedObject",
    "Sam2Settings",
    "Sam2StreamTracker",
    "Sam2VideoPropagator",
    "load_predictor",
]

#: ImageNet statistics SAM2 normalises with (``sam2.utils.misc.load_video_frames``).
_IMG_MEAN = (0.485, 0.456, 0.406)
_IMG_STD = (0.229, 0.224, 0.225)
#: SAM2.1 tiny: the fastest config, practical on CPU at 512 px.
DEFAULT_MODEL_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


@dataclass(frozen=True, slots=True)
class Sam2Settings:
    """Which SAM2 model to build and where to run it.

    Attributes:
        model_config: sam2 hydra config name, e.g. ``configs/sam2.1/sam2.1_hiera_t.yaml``
            (tiny: fastest; ``_s``, ``_b+``, ``_l`` are larger and better).
        checkpoint: path of a ``.pt`` checkpoint matching the config. Required unless
            ``allow_random_weights``.
        image_size: model input side in pixels; None keeps the config's 1024. Smaller is
            much faster on CPU (512: ~5x) at the cost of mask detail.
        device: ``"cuda"``, ``"cpu"``, ``"cuda:1"``...; None picks CUDA when available.
            On CUDA the model runs under bfloat16 autocast, as SAM2's own demos do.
        allow_random_weights: build without a checkpoint (random weights): plumbing
            tests and speed benchmarks only.
    """

    model_config: str = DEFAULT_MODEL_CONFIG
    checkpoint: str | None = None
    image_size: int | None = None
    device: str | None = None
    allow_random_weights: bool = False

    def __post_init__(self) -> None:
        if self.image_size is not None and (self.image_size < 64 or self.image_size % 16):
            raise ConfigError(f"Sam2Settings.image_size must be a multiple of 16 >= 64, got {self.image_size}")
        if self.checkpoint is None and not self.allow_random_weights:
            raise ConfigError(
                "Sam2Settings.checkpoint: a SAM2 checkpoint path is required "
                "(e.g. sam2.1_hiera_tiny.pt from facebookresearch/sam2)"
            )
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise ConfigError(f"Sam2Settings.checkpoint: {self.checkpoint}: no such file")

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Sam2Settings:
        """Settings from ``SAM2_CONFIG``, ``SAM2_CHECKPOINT``, ``SAM2_IMAGE_SIZE``,
        ``SAM2_DEVICE`` and ``SAM2_ALLOW_RANDOM_WEIGHTS`` (Nuclio functions, agents).

        Raises:
            ConfigError: a value that does not parse.
        """
        size = env.get("SAM2_IMAGE_SIZE") or None
        try:
            image_size = int(size) if size else None
        except ValueError as exc:
            raise ConfigError(f"SAM2_IMAGE_SIZE must be an integer, got {size!r}") from exc
        kw: dict[str, Any] = {
            "model_config": env.get("SAM2_CONFIG") or DEFAULT_MODEL_CONFIG,
            "checkpoint": env.get("SAM2_CHECKPOINT") or None,
            "image_size": image_size,
            "device": env.get("SAM2_DEVICE") or None,
            "allow_random_weights": env.get("SAM2_ALLOW_RANDOM_WEIGHTS", "").lower() in ("1", "true", "yes"),
        }
        kw.update(overrides)
        return cls(**kw)


def _torch() -> Any:
    from cvat_extension.models.torchvision_fallback import ensure_torchvision_ops

    torch = require("torch", extra="sam2")
    ensure_torchvision_ops()  # sam2 imports torchvision; its C ops may not load
    return torch


@functools.lru_cache(maxsize=4)
def load_predictor(settings: Sam2Settings) -> Any:
    """Build (once per process and settings) a ``SAM2VideoPredictor`` in eval mode.

    Raises:
        MissingDependencyError: torch or sam2 is not installed.
        ConfigError: the config name is unknown.
    """
    torch = _torch()
    build_sam = require("sam2.build_sam", extra="sam2")
    device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
    overrides = [
        # SAM2's recommended video post-processing (build_sam2_video_predictor's
        # apply_postprocessing), minus hole filling when sam2's CUDA extension is absent:
        # it would only warn and skip.
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
        "++model.binarize_mask_from_pts_for_mem_enc=true",
    ]
    with contextlib.suppress(ImportError):
        import sam2._C  # type: ignore[import-not-found]  # noqa: F401

        overrides.append("++model.fill_hole_area=8")
    if settings.image_size is not None:
        overrides.append(f"++model.image_size={settings.image_size}")
    try:
        predictor = build_sam.build_sam2_video_predictor(
            settings.model_config,
            ckpt_path=settings.checkpoint,
            device=device,
            hydra_overrides_extra=overrides,
            apply_postprocessing=False,
        )
    except Exception as exc:  # hydra raises its own MissingConfigException and friends
        if type(exc).__name__ in ("MissingConfigException", "ConfigCompositionException"):
            raise ConfigError(f"SAM2 model config {settings.model_config!r}: {exc}") from exc
        raise
    logger.info("SAM2 %s on %s, image size %d", settings.model_config, device, predictor.image_size)
    return predictor


def _autocast(torch: Any, device: Any) -> contextlib.AbstractContextManager[Any]:
    if getattr(device, "type", str(device)).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)  # type: ignore[no-any-return]
    return contextlib.nullcontext()


def _check_frame(frame: np.ndarray, where: str) -> np.ndarray:
    a = np.asarray(frame)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8:
        raise InputError(f"{where}: frames must be (H, W, 3) uint8 RGB, got {a.shape} {a.dtype}")
    return a[:, :, :3]


def _frame_to_tensor(torch: Any, frame: np.ndarray, image_size: int) -> Any:
    """(3, S, S) float32 normalised tensor, resized as sam2's JPEG loader does (PIL bicubic)."""
    from PIL import Image

    img = Image.fromarray(frame).resize((image_size, image_size))
    t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(_IMG_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(_IMG_STD, dtype=torch.float32)[:, None, None]
    return (t - mean) / std


class _InMemoryFrames:
    """Lazy ``images`` for a SAM2 inference state: preprocess a frame when SAM2 asks.

    SAM2 indexes ``state["images"][i]`` once per frame; preprocessing on access keeps only
    the raw frames in memory (the reference loader holds every frame as an S×S float tensor).
    """

    def __init__(self, torch: Any, frames: Sequence[np.ndarray], image_size: int, device: Any) -> None:
        self._torch = torch
        self._frames = frames
        self._size = image_size
        self._device = device

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, i: int) -> Any:
        frame = _check_frame(self._frames[i], f"frame index {i}")
        return _frame_to_tensor(self._torch, frame, self._size).to(self._device)


@dataclass(frozen=True, slots=True)
class ObjectPrompt:
    """What a human drew on the prompt frame: exactly one of box, polygon or mask.

    Attributes:
        obj_id: caller's id for the object (e.g. the CVAT track id).
        box_xyxy: pixel-edge box; SAM2 takes boxes natively.
        polygon: flat CVAT polygon points; rasterised to a mask.
        mask: ``(H, W)`` bool mask at frame resolution.
    """

    obj_id: int
    box_xyxy: tuple[float, float, float, float] | None = None
    polygon: tuple[float, ...] | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        given = sum(v is not None for v in (self.box_xyxy, self.polygon, self.mask))
        if given != 1:
            raise InputError(f"object {self.obj_id}: give exactly one of box, polygon or mask, got {given}")

    def as_mask(self, width: int, height: int) -> np.ndarray | None:
        """The prompt as a mask (None for boxes, which SAM2 takes as box prompts)."""
        if self.mask is not None:
            m = np.asarray(self.mask, dtype=bool)
            if m.shape != (height, width):
                raise InputError(f"object {self.obj_id}: mask is {m.shape}, frame is {(height, width)}")
            return m
        if self.polygon is not None:
            return polygon_to_mask(self.polygon, width, height)
        return None


@dataclass(frozen=True)
class PropagatedObject:
    """One object's propagation result.

    Attributes:
        obj_id: the prompt's id.
        frames: ``(n,)`` indices into the caller's frame sequence, in processing order
            (descending when propagated backward).
        masks: ``(n, H, W)`` bool masks at frame resolution.
        confidence: ``(n,)`` float64 presence probability (sigmoid of SAM2's object score).
    """

    obj_id: int
    frames: np.ndarray
    masks: np.ndarray
    confidence: np.ndarray

    @property
    def xyxy(self) -> np.ndarray:
        """``(n, 4)`` boxes derived from the masks; NaN rows where the mask is empty."""
        return masks_to_xyxy(self.masks)

    def polygons(self, epsilon: float = 1.0) -> list[list[float] | None]:
        """Largest-component polygon per frame (None where empty); computed on demand."""
        from cvat_extension.core.masks import mask_to_polygon

        return [mask_to_polygon(m, epsilon=epsilon) for m in self.masks]

    def sorted(self) -> PropagatedObject:
        """The same result with frames ascending (what core selection expects)."""
        order = np.argsort(self.frames, kind="stable")
        return PropagatedObject(self.obj_id, self.frames[order], self.masks[order], self.confidence[order])


class _LazyPredictor:
    """Holds the settings and builds the ``SAM2VideoPredictor`` on first use.

    Loading SAM2 takes seconds and GPU memory: functions and CLIs construct our objects at
    start-up, but only the first real request should pay for the model. A test can pass a
    ready ``predictor``.
    """

    def __init__(self, settings: Sam2Settings, *, predictor: Any | None = None) -> None:
        self.settings = settings
        self._predictor = predictor

    @property
    def predictor(self) -> Any:
        """The underlying ``SAM2VideoPredictor`` (built on first use)."""
        if self._predictor is None:
            self._predictor = load_predictor(self.settings)
        return self._predictor


class Sam2VideoPropagator(_LazyPredictor):
    """Propagate box/polygon/mask prompts through in-memory frames with SAM2's video loop."""

    def init_state(self, frames: Sequence[np.ndarray]) -> dict[str, Any]:
        """A SAM2 inference state over in-memory frames (what ``init_state`` builds from files).

        Raises:
            InputError: no frames, or frames that are not ``(H, W, 3)`` uint8.
        """
        torch = _torch()
        p = self.predictor
        if len(frames) == 0:
            raise InputError("propagation needs at least one frame")
        first = _check_frame(frames[0], "frame index 0")
        device = p.device
        state: dict[str, Any] = {
            "images": _InMemoryFrames(torch, frames, p.image_size, device),
            "num_frames": len(frames),
            "offload_video_to_cpu": False,
            "offload_state_to_cpu": False,
            "video_height": int(first.shape[0]),
            "video_width": int(first.shape[1]),
            "device": device,
            "storage_device": device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }
        return state

    def propagate(
        self,
        frames: Sequence[np.ndarray],
        prompt_frame: int,
        prompts: Sequence[ObjectPrompt],
        *,
        reverse: bool = False,
        max_frames: int | None = None,
    ) -> dict[int, PropagatedObject]:
        """Propagate ``prompts`` drawn on ``frames[prompt_frame]`` forward (or backward).

        Returns one :class:`PropagatedObject` per prompt, keyed by ``obj_id``, covering the
        prompt frame and up to ``max_frames`` frames after (before, when ``reverse``) it.

        Raises:
            InputError: no prompts, a prompt frame out of range, duplicate ids, bad frames.
        """
        if not prompts:
            raise InputError("propagation needs at least one object prompt")
        if not 0 <= prompt_frame < len(frames):
            raise InputError(f"prompt frame {prompt_frame} is outside the {len(frames)} frames given")
        ids = [p.obj_id for p in prompts]
        if len(set(ids)) != len(ids):
            raise InputError(f"object ids must be unique, got {ids}")
        torch = _torch()
        p = self.predictor
        with torch.inference_mode(), _autocast(torch, p.device):
            state = self.init_state(frames)
            h, w = state["video_height"], state["video_width"]
            for pr in prompts:
                mask = pr.as_mask(w, h)
                if mask is None:
                    p.add_new_points_or_box(state, prompt_frame, pr.obj_id, box=np.asarray(pr.box_xyxy, np.float32))
                else:
                    p.add_new_mask(state, prompt_frame, pr.obj_id, torch.from_numpy(mask))
            out_frames: list[int] = []
            out_masks: list[np.ndarray] = []
            out_conf: list[np.ndarray] = []
            for fidx, obj_ids, mask_logits in p.propagate_in_video(
                state, start_frame_idx=prompt_frame, max_frame_num_to_track=max_frames, reverse=reverse
            ):
                out_frames.append(int(fidx))
                out_masks.append((mask_logits[:, 0] > 0.0).cpu().numpy())
                out_conf.append(self._object_scores(torch, state, fidx, obj_ids))
        masks = np.stack(out_masks, axis=1)  # (objects, n, H, W)
        conf = np.stack(out_conf, axis=1)
        frames_arr = np.asarray(out_frames, dtype=np.int64)
        return {
            int(oid): PropagatedObject(int(oid), frames_arr, masks[i], conf[i])
            for i, oid in enumerate(state["obj_ids"])
        }

    @staticmethod
    def _object_scores(torch: Any, state: dict[str, Any], frame_idx: int, obj_ids: Sequence[int]) -> np.ndarray:
        """Sigmoid of SAM2's per-object "object present" logit on ``frame_idx``."""
        scores = []
        for oid in obj_ids:
            out = state["output_dict_per_obj"][state["obj_id_to_idx"][oid]]
            rec = out["cond_frame_outputs"].get(frame_idx) or out["non_cond_frame_outputs"].get(frame_idx)
            logit = rec["object_score_logits"] if rec is not None and rec.get("object_score_logits") is not None else None
            scores.append(1.0 if logit is None else float(torch.sigmoid(logit.float()).reshape(-1)[0]))
        return np.asarray(scores, dtype=np.float64)


# --- frame-by-frame tracking (CVAT tracker protocol) -----------------------------------


@dataclass(frozen=True)
class PreprocessedFrame:
    """Backbone features of one frame, shared by every object tracked on it."""

    width: int
    height: int
    vision_feats: list[Any]
    vision_pos_embeds: list[Any]
    feat_sizes: list[tuple[int, int]]


@dataclass
class ObjectMemory:
    """SAM2 memory of one tracked object: the conditioning frame plus recent frames.

    Attributes:
        width, height: the image size the object was initialised on (every later frame
            must have it).
        shape_type: CVAT shape type the user started from; ``track`` answers in it.
        frame_idx: frames tracked so far (0 on the conditioning frame).
        outputs: SAM2's ``{"cond_frame_outputs": {0: out}, "non_cond_frame_outputs":
            OrderedDict}`` with at most ``num_maskmem`` non-conditioning entries.
    """

    width: int
    height: int
    shape_type: str
    frame_idx: int
    outputs: dict[str, Any]

    def to_bytes(self) -> bytes:
        """Serialise (tensors on CPU) for a shared store such as Redis."""
        torch = _torch()
        payload = {
            "width": self.width,
            "height": self.height,
            "shape_type": self.shape_type,
            "frame_idx": self.frame_idx,
            "cond": {k: _to_cpu(v) for k, v in self.outputs["cond_frame_outputs"].items()},
            "non_cond": [(k, _to_cpu(v)) for k, v in self.outputs["non_cond_frame_outputs"].items()],
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, device: Any = "cpu") -> ObjectMemory:
        """Inverse of :meth:`to_bytes` (``weights_only`` load: no code runs from the store).

        Raises:
            InputError: the bytes are not a stored memory.
        """
        torch = _torch()
        try:
            p = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
            return cls(
                width=int(p["width"]),
                height=int(p["height"]),
                shape_type=str(p["shape_type"]),
                frame_idx=int(p["frame_idx"]),
                outputs={
                    "cond_frame_outputs": dict(p["cond"]),
                    "non_cond_frame_outputs": OrderedDict((int(k), v) for k, v in p["non_cond"]),
                },
            )
        except (KeyError, TypeError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise InputError(f"stored SAM2 tracker memory is unreadable: {exc}") from exc


def _to_cpu(out: Mapping[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for k, v in out.items():
        if isinstance(v, list):
            res[k] = [t.detach().cpu() for t in v]
        elif v is None:
            res[k] = None
        else:
            res[k] = v.detach().cpu()
    return res


class Sam2StreamTracker(_LazyPredictor):
    """Track objects one frame per call, keeping a bounded memory per object.

    Call :meth:`preprocess` once per frame, then :meth:`init` (on the frame a human drew
    on) or :meth:`track` (on later frames) per object. Memories are plain objects owned by
    the caller; :meth:`track` updates them in place.
    """

    @property
    def device(self) -> Any:
        return self.predictor.device

    def preprocess(self, frame: np.ndarray) -> PreprocessedFrame:
        """Run the image encoder on one ``(H, W, 3)`` uint8 RGB frame.

        Raises:
            InputError: not an RGB uint8 image.
        """
        torch = _torch()
        p = self.predictor
        a = _check_frame(frame, "image")
        with torch.inference_mode(), _autocast(torch, p.device):
            img = _frame_to_tensor(torch, a, p.image_size).unsqueeze(0).to(p.device)
            backbone = p.forward_image(img)
            _, feats, pos, sizes = p._prepare_backbone_features(backbone)
        return PreprocessedFrame(int(a.shape[1]), int(a.shape[0]), feats, pos, sizes)

    def _step(self, pp: PreprocessedFrame, frame_idx: int, output_dict: dict[str, Any], **kw: Any) -> dict[str, Any]:
        p = self.predictor
        out = p.track_step(
            frame_idx=frame_idx,
            current_vision_feats=pp.vision_feats,
            current_vision_pos_embeds=pp.vision_pos_embeds,
            feat_sizes=pp.feat_sizes,
            output_dict=output_dict,
            num_frames=frame_idx + 1,
            **kw,
        )
        # Only what later memory attention reads: as in the predictor's compact outputs.
        return {
            "maskmem_features": out["maskmem_features"],
            "maskmem_pos_enc": out["maskmem_pos_enc"][-1:] if out["maskmem_pos_enc"] else None,
            "pred_masks": out["pred_masks"],
            "obj_ptr": out["obj_ptr"],
            "object_score_logits": out["object_score_logits"],
        }

    def init(
        self,
        pp: PreprocessedFrame,
        *,
        shape_type: str,
        box_xyxy: Sequence[float] | None = None,
        mask: np.ndarray | None = None,
    ) -> ObjectMemory:
        """Start tracking from a box or a mask drawn on ``pp``'s frame.

        Raises:
            InputError: neither or both of box and mask, or a mask of the wrong size.
        """
        if (box_xyxy is None) == (mask is None):
            raise InputError("start tracking from exactly one of a box or a mask")
        torch = _torch()
        p = self.predictor
        s = p.image_size
        with torch.inference_mode(), _autocast(torch, p.device):
            if box_xyxy is not None:
                b = np.asarray(box_xyxy, dtype=np.float32).reshape(2, 2)
                coords = torch.from_numpy(b / np.array([pp.width, pp.height], np.float32) * s)
                points = {
                    "point_coords": coords[None].to(p.device),
                    "point_labels": torch.tensor([[2, 3]], dtype=torch.int32, device=p.device),
                }
                out = self._step(pp, 0, {}, is_init_cond_frame=True, point_inputs=points, mask_inputs=None)
            else:
                m = np.asarray(mask, dtype=bool)
                if m.shape != (pp.height, pp.width):
                    raise InputError(f"mask is {m.shape}, image is {(pp.height, pp.width)}")
                t = torch.from_numpy(m).float()[None, None].to(p.device)
                t = torch.nn.functional.interpolate(t, size=(s, s), mode="bilinear", align_corners=False)
                out = self._step(pp, 0, {}, is_init_cond_frame=True, point_inputs=None, mask_inputs=(t >= 0.5).float())
        return ObjectMemory(
            width=pp.width,
            height=pp.height,
            shape_type=shape_type,
            frame_idx=0,
            outputs={"cond_frame_outputs": {0: out}, "non_cond_frame_outputs": OrderedDict()},
        )

    def init_from_shape(self, pp: PreprocessedFrame, shape_type: str, points: Sequence[float]) -> ObjectMemory:
        """Start from a CVAT shape (``rectangle``, ``polygon`` or ``mask`` points).

        Raises:
            InputError: an unsupported type or points that do not fit the image.
        """
        pts = [float(v) for v in points]
        if shape_type == "rectangle":
            if len(pts) != 4 or not (pts[2] > pts[0] and pts[3] > pts[1]):
                raise InputError(f"rectangle needs [x1, y1, x2, y2] with x2 > x1, y2 > y1, got {pts}")
            return self.init(pp, shape_type=shape_type, box_xyxy=pts)
        if shape_type == "polygon":
            m = polygon_to_mask(pts, pp.width, pp.height)
        elif shape_type == "mask":
            m = rle_to_mask(pts, pp.width, pp.height)
        else:
            raise InputError(f"shape type {shape_type!r} cannot be tracked; use rectangle, polygon or mask")
        if not m.any():
            raise InputError(f"the {shape_type} covers no pixel of the {pp.width}x{pp.height} image")
        return self.init(pp, shape_type=shape_type, mask=m)

    def track(self, pp: PreprocessedFrame, memory: ObjectMemory) -> tuple[np.ndarray, float]:
        """Predict the object on ``pp``'s frame; updates ``memory`` in place.

        Returns:
            ``(mask (H, W) bool, confidence 0..1)``.

        Raises:
            InputError: the frame size differs from the one the object started on.
        """
        if (pp.width, pp.height) != (memory.width, memory.height):
            raise InputError(
                f"image is {pp.width}x{pp.height} but the object was started on "
                f"{memory.width}x{memory.height}"
            )
        torch = _torch()
        p = self.predictor
        with torch.inference_mode(), _autocast(torch, p.device):
            memory.frame_idx += 1
            out = self._step(
                pp, memory.frame_idx, memory.outputs, is_init_cond_frame=False, point_inputs=None, mask_inputs=None
            )
            recent = memory.outputs["non_cond_frame_outputs"]
            recent[memory.frame_idx] = out
            while len(recent) > p.num_maskmem:  # memory attention reads at most num_maskmem
                recent.popitem(last=False)
            up = torch.nn.functional.interpolate(
                out["pred_masks"].float(), size=(pp.height, pp.width), mode="bilinear", align_corners=False
            )
            mask = (up[0, 0] > 0.0).cpu().numpy()
            logit = out["object_score_logits"]
            conf = 1.0 if logit is None else float(torch.sigmoid(logit.float()).reshape(-1)[0])
        return mask, conf

