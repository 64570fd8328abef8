//! The rules of DESIGN.md section 4. Each module checks one kind of evidence; [`run`]
//! reads the bundle once for the content-based rules and collects every finding.

pub mod config;
pub mod fs;
pub mod network;
pub mod process;

use crate::error::AnalyzeError;
use crate::evidence::Evidence;
use crate::finding::{self, Finding};
use crate::image::SavedImage;
use crate::profile::{exe_display, Profile};
use exhibit_common::records::ChangeRecord;
use std::collections::{HashMap, HashSet};

/// What the rules look at.
pub struct RuleInput<'a> {
    pub ev: &'a Evidence,
    pub image: Option<&'a SavedImage>,
    pub profile: Option<&'a Profile>,
}

/// Runs every rule; findings come back sorted, most severe first.
pub fn run(input: &RuleInput<'_>) -> Result<Vec<Finding>, AnalyzeError> {
    let ev = input.ev;
    let procs = ev.processes()?;
    let sockets = ev.sockets()?;
    let exe_paths: HashSet<Vec<u8>> = procs.iter().map(|p| exe_display(p).into_bytes()).collect();
    let mut exe_records: HashMap<Vec<u8>, ChangeRecord> = HashMap::new();
    let mut findings = Vec::new();
    let fs_rules = fs::FsRules::new();
    ev.walk_content(&mut |rec, body| {
        fs_rules.check(rec, body, input, &mut findings)?;
        if exe_paths.contains(rec.path.as_bytes()) {
            exe_records.insert(rec.path.as_bytes().to_vec(), rec.clone());
        }
        Ok(())
    })?;
    process::check(&procs, &sockets, &exe_records, input, &mut findings);
    network::check(&sockets, input, &mut findings);
    config::check(input, &mut findings);
    config::check_logs(input, &mut findings)?;
    finding::sort(&mut findings);
    Ok(findings)
}
