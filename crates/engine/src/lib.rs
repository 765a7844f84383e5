//! engine: isola's container engine. It owns the container store (records,
//! state, logs under `<root>/containers`), the volumes (`<root>/volumes`), the lifecycle (create, start, stop,
//! remove), the event log (`<root>/events.jsonl`), the per-container monitor process, and the choice of isolation.
//! Everything above it (the `isola` CLI) is mode-blind: it talks to a
//! [`backend::Backend`] chosen from the container's isolation mode. It must not
//! parse command lines or print for users; the CLI does that.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod attach;
pub mod backend;
pub mod copy;
pub mod disk;
pub mod events;
pub mod filesystem;
pub mod filters;
pub mod health;
pub mod ids;
pub mod images;
pub mod info;
pub mod inspect;
pub mod isolation;
pub mod lifecycle;
pub mod logs;
pub mod monitor;
pub mod mounts;
pub mod netattach;
pub mod networks;
pub mod security;
pub mod socket;
pub mod spec;
pub mod state;
pub mod store;
pub mod sys;
pub mod units;
pub mod user;
pub mod volumes;

pub use lifecycle::{CreateRequest, Engine, Error, ExecOptions, LimitsUpdate, UpdateError};
