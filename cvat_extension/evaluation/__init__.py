"""The real-error evaluation: tracker output vs human ground truth, checks and review scored.

Modules, in pipeline order: :mod:`.sequences` (what is evaluated), :mod:`.simulate`
(detections where MOTChallenge has none), :mod:`.trackers` (our trackers, cached),
:mod:`cvat_extension.metrics.mot_preprocess` (MOTChallenge preprocessing by TrackEval),
:mod:`.matching` (CLEAR's per-frame matches, asserted equal to TrackEval), :mod:`.events`
(error events), :mod:`.scoring` (findings vs events), :mod:`.review_value` (coverage and a
simulated reviewer), :mod:`.merges` (merges vs ground truth), :mod:`.run` (one sequence),
:mod:`.report` (the table). ``scripts/eval_real_errors.py`` runs it all.

Only numpy, scipy and TrackEval are imported at module level; the trackers (torch, boxmot)
are imported when a tracker output is not cached.
"""
