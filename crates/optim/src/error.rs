//! `OptimError`: what can go wrong saving or loading optimiser state.

use std::path::{Path, PathBuf};

/// An error saving or loading optimiser (or scheduler) state. Every variant names the file
/// when there is one, and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid optimiser state file (corrupt, truncated, wrong format).
    #[error("{}: not a valid optimiser state file: {reason}", .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The state is well formed but does not fit this optimiser (another optimiser, other
    /// groups, a parameter of another shape or dtype, ...). Nothing was loaded.
    #[error("optimiser state{} does not fit this optimiser: {reason}", in_file(.path.as_deref()))]
    Mismatch {
        /// The file the state came from, if it came from one.
        path: Option<PathBuf>,
        /// What does not match.
        reason: String,
    },
}

fn in_file(path: Option<&Path>) -> String {
    path.map(|p| format!(" in {}", p.display()))
        .unwrap_or_default()
}

impl OptimError {
    pub(crate) fn mismatch(reason: impl Into<String>) -> OptimError {
        OptimError::Mismatch {
            path: None,
            reason: reason.into(),
        }
    }

    /// Attaches the file a mismatching state was read from.
    pub(crate) fn in_file(self, file: &Path) -> OptimError {
        match self {
            OptimError::Mismatch { path: None, reason } => OptimError::Mismatch {
                path: Some(file.to_path_buf()),
                reason,
            },
            other => other,
        }
    }
}
