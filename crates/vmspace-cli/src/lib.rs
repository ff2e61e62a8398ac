//! The `vmspace` command's library: the scenario language (`.vms`), the
//! runner that drives a [`backend::Backend`], the output formats and the
//! host-versus-engine diff.
//!
//! The contract for the language and its output is
//! `/work/shared/spec/scenario.md`.

pub mod backend;
pub mod diff;
pub mod engine_backend;
pub mod fuzz;
pub mod host_backend;
pub mod host_files;
pub mod output;
pub mod run;
pub mod scenario;
