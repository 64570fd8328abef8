//! A drill: a playbook file that stages an attack in a disposable container and names
//! the findings a capture and analysis must (and must not) produce.

use anyhow::{bail, Context, Result};
use exhibit_common::rule_id::RuleId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One playbook, as in playbooks/drills/NAME.yaml (schema: docs/playbooks.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    pub name: String,
    pub description: String,
    /// MITRE ATT&CK technique ids, e.g. T1505.003: from the Containers matrix where it
    /// has one, else the Enterprise matrix (Linux); docs/playbooks.md says which.
    pub attack: Vec<String>,
    /// Fixture image name: `web` or `shell` (exhibit-fixture/NAME:1).
    pub image: String,
    #[serde(default)]
    pub run: RunOptions,
    /// Steps run inside the container by the drill runner, in order.
    pub stage: Vec<Step>,
    /// Findings that must appear.
    pub expect: Vec<FindingPattern>,
    /// Findings that must not appear.
    #[serde(default)]
    pub forbid: Vec<FindingPattern>,
    /// Profile file, relative to fixtures/profiles/.
    pub profile: Option<String>,
    /// YARA rules (a .yar file or a directory), relative to fixtures/yara/; passed to
    /// the report as `--yara`, so `yara.match` findings can be expected.
    pub yara: Option<String>,
    /// Seconds the whole drill may take.
    #[serde(default = "default_budget")]
    pub budget_seconds: u64,
}

fn default_budget() -> u64 {
    60
}

/// How the disposable container is started.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    #[serde(default)]
    pub privileged: bool,
    /// Bind mounts `HOST:CONTAINER[:ro]`.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Capabilities to add, e.g. NET_ADMIN.
    #[serde(default)]
    pub cap_add: Vec<String>,
}

/// One staging step.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A busybox sh script.
    pub sh: String,
    /// Leave it running in the background (a process that must be seen by the capture).
    #[serde(default)]
    pub background: bool,
}

/// A finding to look for: exact rule id, regex over the subject.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FindingPattern {
    pub rule: RuleId,
    pub subject: String,
}

/// Just the rule ids of a drill file, read before the whole file so that an unknown
/// id is reported with the drill's name and the close ids.
#[derive(Deserialize)]
struct RuleIds {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expect: Vec<RuleOf>,
    #[serde(default)]
    forbid: Vec<RuleOf>,
}

#[derive(Deserialize)]
struct RuleOf {
    rule: Option<String>,
}

/// Refuses a rule id no analyzer rule has: a typo in `forbid:` would otherwise pass
/// silently, one in `expect:` fail every run. Files that do not parse this far are
/// left to the full parse, whose error names file and line.
fn check_rule_ids(text: &str, path: &Path) -> Result<()> {
    let Ok(ids) = serde_norway::from_str::<RuleIds>(text) else {
        return Ok(());
    };
    for (list, patterns) in [("expect", &ids.expect), ("forbid", &ids.forbid)] {
        for rule in patterns.iter().filter_map(|p| p.rule.as_deref()) {
            if let Err(e) = rule.parse::<RuleId>() {
                bail!(
                    "drill {}: {e} in {list} ({})\nhint: {}",
                    ids.name,
                    path.display(),
                    e.hint()
                );
            }
        }
    }
    Ok(())
}

/// Parses one drill file; errors name the file and line, or the drill and an unknown
/// rule id.
pub fn load(path: &Path) -> Result<Drill> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    check_rule_ids(&text, path)?;
    let drill: Drill = serde_norway::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {e}", path.display())
    })?;
    for p in drill.expect.iter().chain(&drill.forbid) {
        regex::Regex::new(&p.subject)
            .with_context(|| format!("{}: bad subject pattern {:?}", path.display(), p.subject))?;
    }
    if let Some(y) = &drill.yara {
        let p = Path::new(y);
        if p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
            bail!(
                "{}: yara {y:?} must be a path inside fixtures/yara/",
                path.display()
            );
        }
    }
    if !matches!(drill.image.as_str(), "web" | "shell") {
        bail!(
            "{}: unknown fixture image {:?} (web or shell)",
            path.display(),
            drill.image
        );
    }
    Ok(drill)
}

/// Every drill in `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Drill>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading drills directory {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files.iter().map(|f| load(f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::{BTreeMap, BTreeSet};

    /// The drills of this checkout.
    fn shipped() -> Vec<Drill> {
        load_all(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/drills"))).unwrap()
    }

    #[test]
    fn shipped_drills_parse_and_name_attack_ids() {
        let id = regex::Regex::new(r"^T\d{4}(\.\d{3})?$").unwrap();
        let all = shipped();
        assert!(all.len() >= 10, "only {} drills", all.len());
        for d in &all {
            assert!(!d.attack.is_empty(), "{}: no ATT&CK id", d.name);
            for a in &d.attack {
                assert!(
                    id.is_match(a),
                    "{}: {a:?} is not an ATT&CK technique id",
                    d.name
                );
            }
            assert!(!d.expect.is_empty(), "{}", d.name);
        }
        // At least two drills are detected through YARA, and every rules path they
        // name exists among the shipped rules.
        let rules = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/yara"));
        let with_yara: Vec<&Drill> = all.iter().filter(|d| d.yara.is_some()).collect();
        assert!(
            with_yara.len() >= 2,
            "only {} drills use YARA",
            with_yara.len()
        );
        for d in with_yara {
            let y = d.yara.as_deref().unwrap_or_default();
            assert!(rules.join(y).exists(), "{}: no rules {y}", d.name);
            assert!(
                d.expect.iter().any(|p| p.rule == RuleId::YaraMatch),
                "{} names rules but expects no yara.match",
                d.name
            );
        }
    }

    #[test]
    fn a_yara_path_outside_the_rules_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("escape.yaml");
        std::fs::write(&p, "name: x\ndescription: y\nattack: [T1]\nimage: web\nstage: []\nexpect: []\nyara: ../../etc/rules.yar\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("inside fixtures/yara"), "{e}");
    }

    /// The rows of the "Shipped drills" table of docs/playbooks.md: drill name and
    /// the ATT&CK ids of its two id columns (Containers matrix, Enterprise Linux).
    fn documented_drills() -> BTreeMap<String, BTreeSet<String>> {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/playbooks.md"))
                .unwrap();
        let section = doc
            .split("\n## Shipped drills")
            .nth(1)
            .expect("docs/playbooks.md has a Shipped drills section");
        let section = section.split("\n## ").next().unwrap();
        let mut rows = section
            .lines()
            .skip_while(|l| !l.starts_with("| drill |"))
            .take_while(|l| l.starts_with('|'));
        let header = rows.next().expect("the shipped drills table");
        assert!(header.contains("Containers"), "{header}");
        let mut out = BTreeMap::new();
        for row in rows.skip(1) {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            assert!(cells.len() >= 3, "short row: {row}");
            let ids = cells[1..3]
                .iter()
                .flat_map(|c| c.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            assert!(
                out.insert(cells[0].to_string(), ids).is_none(),
                "{} twice",
                cells[0]
            );
        }
        out
    }

    #[test]
    fn documented_drills_are_the_shipped_drills_with_the_same_attack_ids() {
        let id = regex::Regex::new(r"^T\d{4}(\.\d{3})?$").unwrap();
        let shipped: BTreeMap<String, BTreeSet<String>> = shipped()
            .into_iter()
            .map(|d| (d.name, d.attack.into_iter().collect()))
            .collect();
        let documented = documented_drills();
        let undocumented: Vec<&String> = shipped
            .keys()
            .filter(|n| !documented.contains_key(*n))
            .collect();
        let unshipped: Vec<&String> = documented
            .keys()
            .filter(|n| !shipped.contains_key(*n))
            .collect();
        assert!(
            undocumented.is_empty(),
            "drills missing from docs/playbooks.md: {undocumented:?}"
        );
        assert!(
            unshipped.is_empty(),
            "docs/playbooks.md lists drills that do not exist: {unshipped:?}"
        );
        for (name, ids) in &documented {
            for a in ids {
                assert!(id.is_match(a), "docs/playbooks.md, {name}: {a:?}");
            }
            assert_eq!(
                ids, &shipped[name],
                "{name}: ATT&CK ids of docs/playbooks.md and playbooks/drills/{name}.yaml differ"
            );
        }
    }

    #[test]
    fn malformed_yaml_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.yaml");
        std::fs::write(&p, "name: x\ndescription: y\nattack: [T1]\nimage: web\nstage:\n  - sh: ok\n    bogus: 1\nexpect: []\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("bad.yaml:7"), "{e}");
    }

    #[test]
    fn a_misspelt_rule_fails_to_load_naming_the_drill_and_the_close_ids() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("typo.yaml");
        std::fs::write(
            &p,
            "name: typo\ndescription: y\nattack: [T1]\nimage: shell\nstage: []\n\
             expect:\n  - {rule: fs.setuid, subject: x}\n\
             forbid:\n  - {rule: fs.setuidd, subject: x}\n",
        )
        .unwrap();
        let e = format!("{:#}", load(&p).unwrap_err());
        assert_eq!(
            e,
            format!(
                "drill typo: unknown rule \"fs.setuidd\" in forbid ({})\n\
                 hint: close rule ids: fs.setuid (docs/findings.md)",
                p.display()
            )
        );
        // The same file with the id spelt right loads.
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("fs.setuidd", "fs.setuid")).unwrap();
        let d = load(&p).unwrap();
        assert_eq!(d.forbid[0].rule, RuleId::FsSetuid);
    }
}
