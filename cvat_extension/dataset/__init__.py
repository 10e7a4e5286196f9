"""The dataset factory: what turns corrected CVAT tracks into a publishable tracking dataset.

One concept per module:

- :mod:`.sequences` — a dataset as named sequences read from files or folders;
- :mod:`.cvat_source` — the same from CVAT tasks, jobs and consensus replica jobs;
- :mod:`.stats` / :mod:`.card` / :mod:`.plots` — the dataset card (numbers, Markdown, PNGs);
- :mod:`.difficulty` / :mod:`.split` — difficulty scores and sequence-level splits;
- :mod:`.mot_export` / :mod:`.coco_video` — MOT Challenge folders and COCO-video JSON;
- :mod:`.agreement` — inter-annotator agreement and ranked disagreements;
- :mod:`.render` / :mod:`.encode` — videos with colour-stable ids.

The commands write through :class:`cvat_extension.io.outputs.OutputPlan`, so their outputs
appear complete or not at all.

Heavy libraries (matplotlib, PyAV) are imported inside the functions that need them.
"""
