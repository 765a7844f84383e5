//! vm: placeholder, filled in by its issue.
