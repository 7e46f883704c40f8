//! The checks a configuration passes before any work starts: the target
//! URL parses, the source opens, the target can be written, a target schema
//! file reads and parses. Nothing is changed.

use sensei_architect::planner::TARGET_SCHEMA_FROM_TARGET;
use sensei_connectors::source::Source;
use sensei_connectors::url::parse;
use sensei_runtime::config::MigrationConfig;
use sensei_scout::planner::source_options;

use crate::error::Result;

/// Checks a configuration against the world before any work starts: the
/// source opens, the target can be written, the target schema file (if
/// any) reads and parses.
pub fn check(config: &MigrationConfig) -> Result<()> {
    parse(&config.target.url, "target")?;
    Source::open_with(&config.source.url, None, &source_options(config)?)?;
    sensei_connectors::target::Target::check(
        &config.target.url,
        &crate::deliver::target_options(config),
        &config.target.namespace,
    )?;
    if !config.target.schema.is_empty() && config.target.schema != TARGET_SCHEMA_FROM_TARGET {
        let ddl = std::fs::read_to_string(&config.target.schema).map_err(|e| {
            sensei_connectors::ConnectorError::Unreadable {
                path: config.target.schema.clone(),
                message: format!("target schema file: {e}"),
            }
        })?;
        crate::architect::ddl::parse(&ddl, &config.target.schema)?;
    }
    Ok(())
}
