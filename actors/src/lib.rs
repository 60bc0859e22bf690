//! Mafalda's distributed actor system (placeholder; see issue 3).
#![warn(missing_docs)]
