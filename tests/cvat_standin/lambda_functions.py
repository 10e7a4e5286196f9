"""CVAT's lambda functions as the stand-in sees them: Nuclio metadata, the gateway, one call.

Follows ``cvat/apps/lambda_manager/views.py`` of CVAT 2.73.0 (commit ac6e63b9, read from the
release source), class by class:

* :class:`NuclioGateway` is ``LambdaGateway``: ``GET /api/functions[/{id}]`` on the Nuclio
  dashboard with the headers CVAT sends (``x-nuclio-project-name: cvat``,
  ``x-nuclio-function-namespace``, ``x-nuclio-invoke-via: domain-name``,
  ``X-Nuclio-Invoke-Timeout``), and invocation either ``dashboard`` (``POST
  /api/function_invocations`` with ``x-nuclio-function-name`` and ``x-nuclio-path: /``) or
  ``direct`` (``POST http://localhost:<status.httpPort>``). HTTP failures carry the text
  ``requests`` puts in ``HTTPError`` (``400 Client Error: Bad Request for url: ...``), which
  is what CVAT hands to the user instead of the function's body.
* :class:`LambdaFunction` parses ``metadata.annotations`` (an unknown ``type`` is invalid,
  labels and attributes must be unique, ``supported_shape_types`` switches trackers to the
  typed protocol) and :meth:`LambdaFunction.invoke` builds the payload per kind: detectors get
  ``image`` (+ ``threshold`` only when truthy), reid gets ``image0/image1/boxes0/boxes1``
  (+ ``max_distance`` when truthy), trackers get ``image/shapes/states`` with the states
  unsigned first. Label mapping: the default maps model labels to task labels of the same
  name and compatible type; a given mapping is validated (``Invalid mapping. Unknown db label
  "x"``). Detector answers are filtered through the mapping, attribute values checked
  against the task's attribute specs, and converted to ``{tags, shapes}`` as
  ``DetectionResultConverter`` does (masks to CVAT RLE, skeleton elements completed with
  outside points at the centroid, a skeleton with only outside points dropped). Tracker
  states are signed with a per-function salt ``cvat-tracker-state:<id>`` and refused after
  8 hours or when tampered with (``Invalid or expired tracker state``).

The signer is Django's ``TimestampSigner`` scheme (value, base62 timestamp, salted
HMAC-SHA256, URL-safe base64) with the stand-in's own secret; its bytes differ from a real
server's, which no client can tell (states are opaque).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import Any

Json = Any

KINDS = ("detector", "interactor", "tracker", "reid")
TRACKER_STATE_MAX_AGE_S = 8 * 3600.0
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 410: "Gone", 413: "Request Entity Too Large", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


class ValidationError(Exception):
    """Django's ``ValidationError(message, code=...)`` as the lambda views raise it."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:  # Django prints a list of messages
        return f"[{self.message!r}]"


class GatewayError(Exception):
    """A failed call to the gateway: ``status`` is what CVAT answers, ``str()`` its body."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class InvalidFunctionMetadataError(Exception):
    pass


class NuclioGateway:
    """CVAT's ``LambdaGateway`` pointed at ``url`` (scheme://host:port of the dashboard)."""

    def __init__(self, url: str, *, invoke_method: str = "dashboard", namespace: str = "nuclio",
                 timeout_s: float = 120.0, direct_host: str = "localhost") -> None:
        if invoke_method not in ("dashboard", "direct"):
            raise ValueError(f"invoke_method must be dashboard or direct, got {invoke_method!r}")
        self.url = url.rstrip("/")
        self.invoke_method = invoke_method
        self.namespace = namespace
        self.timeout_s = timeout_s
        self.direct_host = direct_host

    def _request(self, method: str, url: str, data: Any = None, headers: dict[str, str] | None = None) -> Any:
        body = None if data is None else json.dumps(data).encode()
        all_headers = {"Content-Type": "application/json"} if body is not None else {}
        all_headers.update(headers or {})
        req = urllib.request.Request(url, data=body, method=method.upper(), headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as err:
            err.read()
            kind = "Client" if err.code < 500 else "Server"
            reason = err.reason or _REASONS.get(err.code, "")
            raise GatewayError(err.code, f"{err.code} {kind} Error: {reason} for url: {url}") from None
        except (TimeoutError, socket.timeout) as err:
            raise GatewayError(504, f"Read timed out. (read timeout={self.timeout_s}) {err}") from None
        except urllib.error.URLError as err:
            if isinstance(err.reason, (TimeoutError, socket.timeout)):
                raise GatewayError(504, f"Read timed out. (read timeout={self.timeout_s})") from None
            raise GatewayError(503, f"Connection error to {url}: {err.reason}") from None
        except json.JSONDecodeError as err:
            raise GatewayError(500, f"Invalid JSON from {url}: {err}") from None

    def _http(self, method: str, path: str, data: Any = None, headers: dict[str, str] | None = None) -> Any:
        extra = {"x-nuclio-project-name": "cvat", "x-nuclio-function-namespace": self.namespace,
                 "x-nuclio-invoke-via": "domain-name", "X-Nuclio-Invoke-Timeout": f"{int(self.timeout_s)}s"}
        extra.update(headers or {})
        return self._request(method, self.url + path, data, extra)

    def list(self) -> list[LambdaFunction]:
        out = []
        for item in (self._http("get", "/api/functions") or {}).values():
            try:
                out.append(LambdaFunction(self, item))
            except InvalidFunctionMetadataError:
                continue  # CVAT logs the error and skips the function
        return out

    def get(self, func_id: str) -> LambdaFunction:
        return LambdaFunction(self, self._http("get", f"/api/functions/{func_id}"))

    def invoke(self, func: LambdaFunction, payload: Json) -> Any:
        if self.invoke_method == "dashboard":
            return self._http("post", "/api/function_invocations", payload,
                              {"x-nuclio-function-name": func.id, "x-nuclio-path": "/"})
        return self._request("post", f"http://{self.direct_host}:{func.port}", payload)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b62(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 62)
        out = digits[r] + out
        if not n:
            return out


def _from_b62(text: str) -> int:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    n = 0
    for ch in text:
        n = n * 62 + digits.index(ch)
    return n


class TimestampSigner:
    """Django's ``TimestampSigner(salt=...)``: ``value:timestamp:signature``."""

    def __init__(self, secret: bytes, salt: str, *, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256((salt + "signer").encode() + secret).digest()
        self._clock = clock

    def _signature(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def sign(self, value: str) -> str:
        text = f"{value}:{_b62(int(self._clock()))}"
        return f"{text}:{self._signature(text)}"

    def unsign(self, signed: str, *, max_age_s: float) -> str:
        """The value; raises ``ValueError`` for a bad signature or an expired stamp."""
        if not isinstance(signed, str) or signed.count(":") < 2:
            raise ValueError("no signature")
        text, _, sig = signed.rpartition(":")
        if not hmac.compare_digest(sig, self._signature(text)):
            raise ValueError("bad signature")
        value, _, stamp = text.rpartition(":")
        try:
            age = self._clock() - _from_b62(stamp)
        except ValueError:
            raise ValueError("bad timestamp") from None
        if age > max_age_s:
            raise ValueError("signature expired")
        return value


#: One secret per stand-in process (as SECRET_KEY is per CVAT deployment).
SECRET = secrets.token_bytes(32)


class LambdaFunction:
    """A function CVAT knows, parsed from its Nuclio description."""

    FRAME_PARAMETERS = (("frame", "frame"), ("frame0", "start frame"), ("frame1", "end frame"))

    def __init__(self, gateway: NuclioGateway, data: Json) -> None:
        self.gateway = gateway
        self.id = str(data["metadata"]["name"])
        anno = data["metadata"].get("annotations") or {}
        kind = anno.get("type")
        if kind not in KINDS:
            raise InvalidFunctionMetadataError(f"{self.id} lambda function has unknown type: {kind!r}")
        self.kind = str(kind)
        spec = json.loads(anno.get("spec") or "[]")
        self.labels = self._parse_labels(spec)
        self.description = data["spec"]["description"]
        self.port = (data.get("status") or {}).get("httpPort")
        self.name = anno.get("name", self.id)
        self.version = int(anno.get("version", "1"))
        self.min_pos_points = int(anno.get("min_pos_points", 1))
        self.min_neg_points = int(anno.get("min_neg_points", -1))
        self.startswith_box = bool(anno.get("startswith_box", False))
        self.startswith_box_optional = bool(anno.get("startswith_box_optional", False))
        self.animated_gif = anno.get("animated_gif", "")
        self.help_message = anno.get("help_message", "")
        self.supported_shape_types: list[str] | None = None
        if "supported_shape_types" in anno:
            self.supported_shape_types = [s.strip() for s in str(anno["supported_shape_types"]).split(",") if s.strip()]
            if not self.supported_shape_types:
                raise InvalidFunctionMetadataError(f"{self.id!r} lambda function has no supported shape types")

    def _parse_labels(self, spec: Sequence[Json]) -> list[Json]:
        parsed = []
        for label in spec:
            attrs = [{"name": a["name"], "input_type": a["input_type"], "values": a["values"]}
                     for a in label.get("attributes", [])]
            if len(attrs) != len({a["name"] for a in attrs}):
                raise InvalidFunctionMetadataError(f"{self.id} lambda function has non-unique attributes")
            item = {"name": label["name"], "type": label.get("type", "any"), "attributes": attrs}
            if item["type"] == "skeleton":
                item.update(sublabels=self._parse_labels(label["sublabels"]), svg=label["svg"])
            parsed.append(item)
        if len(parsed) != len({lb["name"] for lb in spec}):
            raise InvalidFunctionMetadataError(f"{self.id} lambda function has non-unique labels")
        return parsed

    def to_dict(self) -> Json:
        out = {"id": self.id, "kind": self.kind, "labels_v2": self.labels, "description": self.description,
               "name": self.name, "version": self.version}
        if self.kind == "interactor":
            out.update(min_pos_points=self.min_pos_points, min_neg_points=self.min_neg_points,
                       startswith_box=self.startswith_box, startswith_box_optional=self.startswith_box_optional,
                       help_message=self.help_message, animated_gif=self.animated_gif)
        elif self.kind == "tracker":
            out["supported_shape_types"] = self.supported_shape_types or ["rectangle"]
        return out

    def signer(self) -> TimestampSigner:
        return TimestampSigner(SECRET, f"cvat-tracker-state:{self.id}")

    # ------------------------------------------------------------------ one call
    def invoke(self, task: Any, task_labels: list[Json], data: Json, *, job: Any | None,
               image_of: Callable[[int], str]) -> Any:
        """One call as ``LambdaFunction.invoke`` makes it; returns the converted answer.

        ``image_of(frame)`` is the base64 of the frame's original bytes.

        Raises:
            ValidationError: bad arguments, mapping or tracker state (CVAT's status code).
            GatewayError: the gateway or function failed.
        """
        data = {k: v for k, v in data.items() if v is not None}

        def mandatory(name: str) -> Any:
            if name not in data:
                raise ValidationError(f"`{self.id}` lambda function was called without mandatory argument: {name}")
            return data[name]

        payload: Json = {}
        if data.get("threshold"):
            payload["threshold"] = data["threshold"]
        mapping = data.get("mapping") or {}
        mapping = resolve_mapping(mapping, self.labels, task_labels) if mapping else default_mapping(self.labels, task_labels)
        if job is not None:
            for key, desc in self.FRAME_PARAMETERS:
                if key in data and not job.start_frame <= int(data[key]) <= job.stop_frame:
                    raise ValidationError(f"The {desc} is outside the job range")
        if self.kind in ("detector", "interactor"):
            payload["image"] = image_of(int(mandatory("frame")))
        if self.kind == "interactor":
            payload.update(pos_points=mandatory("pos_points"), neg_points=mandatory("neg_points"),
                           obj_bbox=data.get("obj_bbox"))
        elif self.kind == "reid":
            payload.update(image0=image_of(int(mandatory("frame0"))), image1=image_of(int(mandatory("frame1"))),
                           boxes0=mandatory("boxes0"), boxes1=mandatory("boxes1"))
            if data.get("max_distance"):
                payload["max_distance"] = data["max_distance"]
        elif self.kind == "tracker":
            payload.update(self._tracker_payload(data, mandatory, image_of))
        response = self.gateway.invoke(self, payload)
        if self.kind == "detector":
            return convert_detections(response, mapping, task_labels, frame=int(mandatory("frame")),
                                      conv_mask_to_poly=bool(data.get("conv_mask_to_poly", False)))
        if self.kind == "tracker":
            signer = self.signer()
            if "shapes" in response and not self.supported_shape_types:
                response["shapes"] = [None if p is None else {"type": "rectangle", "points": p}
                                      for p in response["shapes"]]
            response["states"] = [signer.sign(json.dumps(s, separators=(",", ":"))) for s in response["states"]]
        return response

    def _tracker_payload(self, data: Json, mandatory: Callable[[str], Any], image_of: Callable[[int], str]) -> Json:
        signer = self.signer()
        supported = self.supported_shape_types or ["rectangle"]

        def prepare(shape: Any) -> Any:
            if shape is None:
                return None
            if shape["type"] not in supported:
                raise ValidationError(f"This function does not support shapes of type {shape['type']!r}")
            return shape if self.supported_shape_types is not None else shape["points"]

        if "states" not in data:
            shapes, states = mandatory("shapes"), []
        elif "shapes" not in data:
            states = mandatory("states")
            shapes = [None] * len(states)
        else:
            shapes, states = data["shapes"], data["states"]
        try:
            unsigned = [None if s is None else json.loads(signer.unsign(s, max_age_s=TRACKER_STATE_MAX_AGE_S))
                        for s in states]
        except ValueError:
            raise ValidationError("Invalid or expired tracker state") from None
        return {"image": image_of(int(mandatory("frame"))), "shapes": [prepare(s) for s in shapes],
                "states": unsigned}


# ---------------------------------------------------------------------- labels and mapping
def labels_compatible(model_label: Json, task_label: Json) -> bool:
    m, d = model_label["type"], task_label.get("type", "any")
    return (m == d or (d == "any" and m != "skeleton") or (m == "any" and d != "skeleton")
            or (m in ("mask", "polygon") and d in ("mask", "polygon")))


def default_mapping(model_labels: Sequence[Json], task_labels: Sequence[Json]) -> Json:
    """Same-name, compatible labels (and same-name attributes), as ``make_default_mapping``."""
    out: Json = {}
    for ml in model_labels:
        for tl in task_labels:
            if tl["name"] == ml["name"] and labels_compatible(ml, tl):
                attrs = {a["name"]: da["name"] for a in ml.get("attributes", [])
                         for da in tl.get("attributes", []) if da["name"] == a["name"]}
                out[ml["name"]] = {"name": tl["name"], "attributes": attrs, "md_label": ml, "db_label": tl}
                if ml["type"] == "skeleton" and tl.get("type") == "skeleton":
                    out[ml["name"]]["sublabels"] = default_mapping(ml["sublabels"], tl.get("sublabels", []))
    return out


def resolve_mapping(mapping: Json, model_labels: Sequence[Json], task_labels: Sequence[Json]) -> Json:
    """Validate a user mapping (``validate_labels_mapping``) and attach the labels."""
    out = deepcopy(mapping)
    for model_name, item in out.items():
        md = next((x for x in model_labels if x["name"] == model_name), None)
        if md is None:
            raise ValidationError(f'Invalid mapping. Unknown model label "{model_name}"')
        db = next((x for x in task_labels if x["name"] == item["name"]), None)
        if db is None:
            raise ValidationError(f'Invalid mapping. Unknown db label "{item["name"]}"')
        if not labels_compatible(md, db):
            raise ValidationError(f'Invalid mapping. Model label "{model_name}" and database label '
                                  f'"{item["name"]}" are not compatible')
        for m_attr, d_attr in (item.get("attributes") or {}).items():
            if m_attr not in [a["name"] for a in md["attributes"]]:
                raise ValidationError(f'Invalid mapping. Unknown model attribute "{m_attr}"')
            if d_attr not in [a["name"] for a in db.get("attributes", [])]:
                raise ValidationError(f'Invalid mapping. Unknown db attribute "{d_attr}"')
        if md["type"] == "skeleton" and db.get("type") == "skeleton":
            if "sublabels" not in item:
                raise ValidationError(f'Mapping for elements was not specified in skeleton "{model_name}" ')
            item["sublabels"] = resolve_mapping(item["sublabels"], md["sublabels"], db.get("sublabels", []))
        item.setdefault("attributes", {})
        item["md_label"], item["db_label"] = md, db
    return out


def _attr_ok(value: Any, spec: Json) -> bool:
    kind = spec.get("input_type")
    values = spec.get("values")
    if kind == "number":
        lo, hi, step = map(int, values if isinstance(values, list) else str(values).split("\n"))
        try:
            v = int(value)
        except (TypeError, ValueError):
            return False
        return lo <= v <= hi and (v - lo) % step == 0
    if kind == "checkbox":
        return value in ("true", "false")
    if kind == "text":
        return True
    if kind in ("select", "radio"):
        return value in values
    return False


def _attributes(given: Sequence[Json], attr_map: Json, db_attrs: Sequence[Json]) -> list[Json]:
    out = []
    for a in given or []:
        if a["name"] not in attr_map:
            continue
        spec = next((d for d in db_attrs if d["name"] == attr_map[a["name"]]), None)
        if spec is not None and _attr_ok(a["value"], spec):
            out.append({"name": spec["name"], "value": a["value"]})
    return out


def _rle(bits: Sequence[int]) -> list[int]:
    """CVAT's ``mask_to_rle`` of a 0/1 sequence: run lengths, starting with a run of zeros."""
    counts, current, run = [], 0, 0
    for b in bits:
        b = 1 if b else 0
        if b == current:
            run += 1
        else:
            counts.append(run)
            current, run = b, 1
    counts.append(run)
    return counts


def convert_detections(response: Any, mapping: Json, task_labels: Sequence[Json], *, frame: int,
                       conv_mask_to_poly: bool) -> Json:
    """Filter a detector's answer through the mapping and convert it to ``{tags, shapes}``."""
    kept = []
    for item in response:
        name = item["label"]
        if name not in mapping:
            continue
        db = mapping[name]["db_label"]
        item["label"] = db["name"]
        item["attributes"] = _attributes(item.get("attributes", []), mapping[name]["attributes"],
                                         db.get("attributes", []))
        if "elements" in item:
            sub = mapping[name]["sublabels"]  # KeyError 'sublabels' as in CVAT when the spec lied
            item["elements"] = [e for e in item["elements"] if e["label"] in sub]
            for e in item["elements"]:
                entry = sub[e["label"]]
                e["label"] = entry["db_label"]["name"]
                e["attributes"] = _attributes(e.get("attributes", []), entry["attributes"],
                                              entry["db_label"].get("attributes", []))
        kept.append(item)
    by_name = {lb["name"]: lb for lb in task_labels}
    out: Json = {"version": 0, "tags": [], "shapes": [], "tracks": []}
    for anno in kept:
        parsed = _parse_anno(by_name, anno, frame=frame, conv_mask_to_poly=conv_mask_to_poly)
        if parsed is not None:
            out["tags" if anno["type"].lower() == "tag" else "shapes"].append(parsed)
    return out


def _parse_anno(labels: Json, anno: Json, *, frame: int, conv_mask_to_poly: bool) -> Json | None:
    label = labels.get(anno["label"])
    if label is None:
        return None
    spec_ids = {a["name"]: a["id"] for a in label.get("attributes", [])}
    attrs = [{"spec_id": spec_ids[a["name"]], "value": a["value"]} for a in anno.get("attributes", [])
             if a["name"] in spec_ids]
    if anno["type"].lower() == "tag":
        return {"frame": frame, "label_id": label["id"], "source": "auto", "attributes": attrs, "group": None}
    shape: Json = {"frame": frame, "label_id": label["id"], "source": "auto", "attributes": attrs,
                   "group": anno.get("group_id"), "type": anno["type"], "occluded": False,
                   "outside": anno.get("outside", False),
                   "points": anno.get("mask", []) if anno["type"] == "mask" else anno.get("points", []),
                   "z_order": 0, "elements": []}
    if shape["type"] in ("rectangle", "ellipse"):
        shape["rotation"] = anno.get("rotation", 0)
    if anno["type"] == "mask" and "points" in anno and conv_mask_to_poly:
        shape["type"], shape["points"] = "polygon", anno["points"]
    elif anno["type"] == "mask":
        box = shape["points"][-4:]
        shape["points"] = _rle(shape["points"][:-4]) + list(box)
    if shape["type"] == "skeleton":
        subs = {lb["name"]: lb for lb in label.get("sublabels", [])}
        elements = [e for e in (_parse_anno(subs, x, frame=frame, conv_mask_to_poly=conv_mask_to_poly)
                                for x in anno["elements"]) if e is not None]
        cx = sum(e["points"][0] for e in elements) / (len(elements) or 1)
        cy = sum(e["points"][1] for e in elements) / (len(elements) or 1)
        shape["elements"] = [next((e for e in elements if e["label_id"] == s["id"]),
                                  {"frame": frame, "label_id": s["id"], "source": "auto", "attributes": [],
                                   "group": None, "type": s.get("type", "points"), "occluded": False,
                                   "points": [cx, cy], "outside": True, "z_order": 0})
                             for s in subs.values()]
        if all(e["outside"] for e in shape["elements"]):
            return None
    return shape
