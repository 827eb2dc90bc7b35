//! Commands over results folders already written: `gauntlet report` (draw the reports again
//! from a folder's data) and `gauntlet compare` (what changed between two runs).

use super::{Exit, out};
use crate::cli::{CompareArgs, ReportArgs};
use crate::report::compare::{Rules, compare as diff};

pub(super) fn compare(a: &CompareArgs) -> Exit {
    let rules = match &a.rules {
        Some(p) => match Rules::read(p) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("gauntlet compare: --rules {e}");
                return Exit::Usage;
            }
        },
        None => Rules::default(),
    };
    match diff(&a.baseline, &a.current, &rules) {
        Err(e) => {
            eprintln!("gauntlet compare: {e}");
            Exit::Usage
        }
        Ok(c) => {
            out(&if a.json {
                c.to_json()
            } else if a.markdown {
                c.markdown()
            } else {
                c.text()
            });
            if c.regressions > 0 { Exit::Fail } else { Exit::Pass }
        }
    }
}

pub(super) fn report(a: &ReportArgs) -> Exit {
    if let Some(o) = &a.out {
        if let Err(e) = crate::report::ResultsDir::claim(o, false) {
            eprintln!("gauntlet report: --out {e}");
            return Exit::Usage;
        }
    }
    match crate::report::rerender(&a.dir, a.out.as_deref()) {
        Err(e) => {
            eprintln!("gauntlet report: {e}");
            Exit::Usage
        }
        Ok(crate::report::Rendered { verdict, failed }) => {
            let at = a.out.as_deref().unwrap_or(&a.dir);
            for e in &failed {
                eprintln!("gauntlet report: {e}");
            }
            if failed.is_empty() {
                out(&format!(
                    "{}: verdict {} — its reports and manifest.json written again\n",
                    at.display(),
                    verdict.name().to_uppercase()
                ));
                Exit::Pass
            } else {
                out(&format!("{}: INCOMPLETE ({} file(s) not written)\n", at.display(), failed.len()));
                Exit::Runtime
            }
        }
    }
}
