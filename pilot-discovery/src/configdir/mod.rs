//! The config-folder adapter: the same YAML a user would `kubectl apply`,
//! read from a directory and watched for changes.

mod folder;
mod parse;
mod watch;

pub use folder::{ConfigFolder, Reload};
pub use parse::{parse_file, ParsedFile};
pub use watch::{watch_folder, Burst, Changes};
