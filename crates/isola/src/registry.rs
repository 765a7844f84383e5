//! placeholder: the registry commands; owned by their issue's work.

use std::path::Path;

#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {}

impl RegistryCommand {
    /// Runs the command; returns the process exit code.
    pub fn run(self, _root: &Path) -> anyhow::Result<u8> {
        match self {}
    }
}
