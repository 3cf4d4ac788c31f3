// Filled in by the caption-metrics work.
