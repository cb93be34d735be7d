//! Datasets and loaders (not written yet).
