//! The dashboard rendered from fixed snapshot data at 80×24 and 160×48, compared with stored
//! snapshots; and the terminal guard.

use std::time::Duration;

use gauntlet::conformance::Violation;
use gauntlet::dashboard::{Focus, History, Info, Sort, Threshold, Ui, View, Window, draw};
use gauntlet::metrics::{Counts, Snapshot, histogram};
use gauntlet::scenario::{Metric, Op, Stat};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn counts(sent: u64, statuses: &[(u16, u64)], violations: &[(Violation, u64)]) -> Counts {
    let mut c = Counts { sent, completed: sent, statuses: statuses.to_vec(), ..Default::default() };
    for (v, n) in violations {
        c.violations[v.index()] = *n;
    }
    c
}

fn fixture() -> (Info, Snapshot, History) {
    let mut window = histogram();
    let mut total = histogram();
    for (v, n) in [(300u64, 400u64), (800, 300), (1_800, 200), (7_000, 60), (40_000, 8), (300_000, 1)] {
        window.record_n(v, n).unwrap();
        total.record_n(v, n * 20).unwrap();
    }
    let per_check = vec![
        counts(9_000, &[(200, 9_000)], &[]),
        counts(400, &[(403, 380), (200, 20)], &[(Violation::Leak, 20)]),
        Counts { sent: 300, completed: 300, tls_rejected: 300, ..Default::default() },
        counts(250, &[(200, 50), (429, 200)], &[]),
        counts(120, &[(502, 120)], &[(Violation::WrongStatus, 120)]),
    ];
    let mut totals = Counts::default();
    for c in &per_check {
        totals.add(c);
    }
    totals.errors[gauntlet::conformance::ErrorKind::Timeout.index()] = 3;
    // The check with the most violations carries an upstream header finding and errors with
    // their causes (what the drill-down shows).
    let mut causes = vec![gauntlet::metrics::CheckCauses::default(); per_check.len()];
    causes[4][gauntlet::conformance::ErrorKind::Reset.index()]
        .note(Some("the server closed the connection without answering"), 3);
    let mut header_notes = vec![Vec::new(); per_check.len()];
    header_notes[4].push(("x-forwarded-groups: the client's forged value arrived (`admins`)".to_string(), 7));
    let snap = Snapshot {
        causes,
        header_notes,
        elapsed: Duration::from_millis(22_500),
        phase: 1,
        phase_name: "ramp".into(),
        phase_elapsed: Duration::from_millis(12_500),
        phase_length: Some(Duration::from_secs(20)),
        condition: "unimpaired".into(),
        condition_index: 0,
        offered_rps: Some(1_050.0),
        replay: false,
        achieved_rps: 1_020.0,
        window_latency: window,
        totals,
        per_check,
        latency_total: total,
        per_check_p99_us: vec![2_100, 1_500, 900, 3_300, 45_000],
        per_slot: Vec::new(),
        done: false,
    };
    let info = Info {
        scenario: "demo".into(),
        target: "https://127.0.0.1:8443".into(),
        protocol: "auto".into(),
        checks: vec![
            ("ZT-BASE-CTRL-001".into(), "allow", false),
            ("ZT-AUTHZ-PATH-001".into(), "deny", true),
            ("ZT-AUTHN-MTLS-001".into(), "tls_reject", true),
            ("ZT-DOS-RATE-001".into(), "limit", false),
            ("ZT-AUTHZ-POL-002".into(), "deny", true),
        ],
        denials: vec![vec![], vec![401, 403], vec![], vec![429], vec![403]],
        thresholds: vec![
            Threshold {
                expr: "leak == 0".into(),
                metric: Some(Metric::Violation(Violation::Leak)),
                op: Op::Eq,
                value: 0.0,
            },
            Threshold { expr: "p99 < 250ms during baseline".into(), metric: None, op: Op::Lt, value: 250.0 },
            Threshold { expr: "p99 < 5ms".into(), metric: Some(Metric::Latency(Stat::P99)), op: Op::Lt, value: 5.0 },
        ],
        outage_statuses: vec![],
    };
    let mut history = History::default();
    for i in 0..90u64 {
        let mut s = snap.clone();
        s.elapsed = Duration::from_millis(250 * i);
        s.offered_rps = Some(300.0 + 9.0 * i as f64);
        s.achieved_rps = 300.0 + 8.5 * i as f64;
        // A condition in force from 10 s to 15 s: both time charts mark its edges.
        s.condition_index = usize::from((40..60).contains(&i));
        history.push(&s);
    }
    (info, snap, history)
}

fn screen(w: u16, h: u16, ui: &Ui) -> String {
    let (info, snap, history) = fixture();
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| draw(f, &View { info: &info, snap: &snap, history: &history, ui })).unwrap();
    let buf = term.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        for x in 0..w {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[test]
fn dashboard_at_80x24() {
    let s = screen(80, 24, &Ui::default());
    assert!(s.contains("LEAK 20"), "{s}");
    insta::assert_snapshot!("dashboard_80x24", s);
}

#[test]
fn dashboard_at_160x48() {
    let s = screen(160, 48, &Ui::default());
    assert!(s.contains("ZT-AUTHZ-PATH-001") && s.contains("expected denials"), "{s}");
    assert!(s.contains("condition change"), "{s}");
    insta::assert_snapshot!("dashboard_160x48", s);
}

#[test]
fn help_overlay_and_drill_down() {
    let help = screen(100, 30, &Ui { help: true, ..Ui::default() });
    assert!(help.contains("stop the run (results are still written)"));
    let drill = screen(
        100,
        30,
        &Ui { drill: true, sort: Sort::Violations, selected: 0, focus: Focus::Checks, ..Ui::default() },
    );
    assert!(drill.contains("x-forwarded-groups: the client's forged value arrived"), "{drill}");
    assert!(drill.contains("reset ×3: the server closed the connection"), "{drill}");
    insta::assert_snapshot!("dashboard_drill", drill);
    let short = screen(100, 30, &Ui { window: Window::Short, sort: Sort::P99, ..Ui::default() });
    assert!(short.contains("10 s") && short.contains("by p99"));
}

static RESTORED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_restore() {
    RESTORED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

fn dashboard_body(fail: &str) -> std::io::Result<()> {
    let _guard = gauntlet::dashboard::Guard::new(count_restore);
    match fail {
        "error" => Err(std::io::Error::other("terminal went away"))?,
        "panic" => panic!("a bug while drawing"),
        _ => Ok(()),
    }
}

#[test]
fn the_terminal_is_restored_after_an_error_and_after_a_panic() {
    use std::sync::atomic::Ordering::SeqCst;
    let before = RESTORED.load(SeqCst);
    assert!(dashboard_body("error").is_err());
    assert_eq!(RESTORED.load(SeqCst), before + 1, "restored on the error path");
    assert!(std::panic::catch_unwind(|| dashboard_body("panic")).is_err());
    assert_eq!(RESTORED.load(SeqCst), before + 2, "restored while unwinding from a panic");
    assert!(dashboard_body("ok").is_ok());
    assert_eq!(RESTORED.load(SeqCst), before + 3);
}
