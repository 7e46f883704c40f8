//! What the head shows of a migration: its status document (what
//! `sensei-cluster status`, the dashboard and the closing summary show) and
//! the mapping it runs with (what `sensei plan` prints). Neither changes the
//! migration's state.

use sensei_scheduler::Phase;

use crate::artifacts::MappingSpec;
use crate::error::Result;
use crate::orchestrator::Orchestrator;

impl Orchestrator {
    /// A status document for a migration: state, per-phase progress and
    /// checkpoints, artifact paths, recent events.
    pub fn status(&self, id: &str) -> Result<serde_json::Value> {
        let (state, error) = self.scheduler().migration_state(id)?;
        let mut phases = serde_json::Map::new();
        for phase in Phase::ALL {
            let p = self.scheduler().progress(id, phase)?;
            let cp = self.scheduler().checkpoint(id, phase)?;
            phases.insert(
                phase.as_str().into(),
                serde_json::json!({"total": p.total, "done": p.done, "running": p.running, "failed": p.failed, "rows": p.rows,
                    "checkpoint": cp.map(|c| serde_json::json!({"uri": c.uri, "sha256": c.sha256, "recorded_ms": c.recorded_ms}))}),
            );
        }
        let dir = self.artifacts().local_path(id);
        let events = self.scheduler().events_since(id, 0)?;
        let recent: Vec<_> = events.iter().rev().take(20).rev().collect();
        Ok(serde_json::json!({
            "migration_id": id,
            "state": state.as_str(),
            "error": error,
            "created_ms": self.scheduler().migration_created_ms(id)?,
            "phases": phases,
            "artifacts": {
                "dir": dir.display().to_string(),
                "manifest": dir.join("manifest.json").display().to_string(),
                "mapping": dir.join("mapping.json").display().to_string(),
                "lineage": dir.join("lineage.json").display().to_string(),
                "certificate": dir.join("certificate.json").display().to_string(),
                "receipt": dir.join("receipt.json").display().to_string(),
            },
            "events": recent,
        }))
    }

    /// The mapping a migration runs with (see
    /// [`sensei_architect::planner::mapping`]); a review file still applies
    /// until the Workers have been given it.
    pub async fn mapping(&self, id: &str) -> Result<MappingSpec> {
        let config = self.config(id)?;
        let review_open = self.scheduler().progress(id, Phase::Transformation)?.total == 0;
        let mut cx = self.context(id, &config);
        let spec = sensei_architect::planner::mapping(&mut cx, review_open).await;
        self.log(cx)?;
        Ok(spec?)
    }
}
