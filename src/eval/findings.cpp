// Filled in by the findings work.
