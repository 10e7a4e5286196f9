"""The QA core: numpy/scipy only. Never imports CVAT, Nuclio, torch or model libraries."""
