//! The rules of DESIGN.md section 4. Each module checks one kind of evidence; [`run`]
//! reads the bundle once for the content-based rules and collects every finding.

pub mod config;
pub mod fs;
pub mod network;
pub mod process;
pub mod yara;

use crate::error::AnalyzeError;
use crate::evidence::Evidence;
use crate::finding::{self, Finding};
use crate::image::SavedImage;
use crate::profile::{exe_display, Profile};
use exhibit_common::records::ChangeRecord;
use exhibit_common::WalkEntry;
use std::collections::{HashMap, HashSet};

/// What the rules look at.
pub struct RuleInput<'a> {
    pub ev: &'a Evidence,
    pub image: Option<&'a SavedImage>,
    pub profile: Option<&'a Profile>,
}

/// Runs every rule; findings come back sorted, most severe first.
pub fn run(input: &RuleInput<'_>) -> Result<Vec<Finding>, AnalyzeError> {
    Ok(run_with_yara(input, None)?.0)
}

/// YARA rules to run with the others, and the most bytes of one object to scan.
pub struct YaraInput<'a> {
    pub rules: &'a crate::yara_rules::YaraRules,
    pub max_size: u64,
}

/// Runs every rule and, when given, the YARA rules; the bundle is read once: content
/// entries go through the fs rules and the YARA scan, kept executables and memory
/// regions through the YARA scan. Findings come back sorted, most severe first.
pub fn run_with_yara(
    input: &RuleInput<'_>,
    yara_input: Option<&YaraInput<'_>>,
) -> Result<(Vec<Finding>, Option<yara::ScanSummary>), AnalyzeError> {
    let ev = input.ev;
    let procs = ev.processes()?;
    let sockets = ev.sockets()?;
    let exe_paths: HashSet<Vec<u8>> = procs.iter().map(|p| exe_display(p).into_bytes()).collect();
    let mut exe_records: HashMap<Vec<u8>, ChangeRecord> = HashMap::new();
    let mut findings = Vec::new();
    let fs_rules = fs::FsRules::new();
    let mut on_content = |rec: &ChangeRecord,
                          body: &mut dyn std::io::Read,
                          scan: Option<&mut yara::YaraScan<'_>>|
     -> std::io::Result<()> {
        let scan = scan.and_then(|s| if s.wants_file(rec) { Some(s) } else { None });
        match scan {
            Some(scan) => {
                let (bytes, size) = scan.fill(body)?;
                fs_rules.check(rec, &mut &bytes[..], input, &mut findings)?;
                scan.scan(yara::Object::File(Box::new(rec.clone())), size);
            }
            None => fs_rules.check(rec, body, input, &mut findings)?,
        }
        if exe_paths.contains(rec.path.as_bytes()) {
            exe_records.insert(rec.path.as_bytes().to_vec(), rec.clone());
        }
        Ok(())
    };
    let summary = match yara_input {
        None => {
            ev.walk_content(&mut |rec, body| on_content(rec, body, None))?;
            None
        }
        Some(y) => {
            let (walked, yara_findings, summary) =
                yara::with_scan(y.rules, y.max_size, &procs, |scan| {
                    ev.walk(&mut |entry, body| match entry {
                        WalkEntry::Content(rec) => on_content(rec, body, Some(&mut *scan)),
                        WalkEntry::Member(name) if yara::YaraScan::wants_member(name) => {
                            let (_, size) = scan.fill(body)?;
                            scan.scan(yara::Object::Member(name.to_string()), size);
                            Ok(())
                        }
                        WalkEntry::Member(_) => Ok(()),
                    })
                });
            walked?;
            findings.extend(yara_findings);
            Some(summary)
        }
    };
    process::check(&procs, &sockets, &exe_records, input, &mut findings);
    network::check(&sockets, input, &mut findings);
    config::check(input, &mut findings);
    config::check_logs(input, &mut findings)?;
    finding::sort(&mut findings);
    Ok((findings, summary))
}
