//! Optimisers (not written yet).
