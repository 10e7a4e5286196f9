"""Model wrappers (ultralytics, boxmot, sam2); torch is imported lazily inside them."""
