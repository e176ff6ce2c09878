//! Library behind the `snapinspect` command: show, validate and diff images.
