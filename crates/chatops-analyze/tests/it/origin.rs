//! Logs exported from the origin TypeScript bot: CloudWatch export prefixes, `@timestamp`,
//! epoch-millisecond timestamps, numbers as strings, Lambda's own START/END/REPORT lines.

use chatops_analyze::Metric;

use crate::support::{analyze, fixture, s};

#[test]
fn reads_the_origin_systems_cloudwatch_export() {
    let (out, _) = analyze(&[s(&fixture("origin-cloudwatch.log"))]);
    let m = out.summary;
    assert_eq!((m.lines.total, m.lines.router, m.lines.worker, m.lines.not_json), (7, 2, 2, 3));
    assert_eq!((m.router.requests, m.router.errors), (2, 1));
    assert_eq!(m.router.errors_by_type.get("DynamoDBError"), Some(&1));
    assert_eq!(m.router.errors_by_status.get("500"), Some(&1));
    let d = m.stage(Metric::RouterDuration).unwrap();
    assert_eq!((d.min, d.max), (30.0, 45.5), "numeric strings are numbers");
    let e = m.stage(Metric::TotalE2e).unwrap();
    assert_eq!((e.count, e.min, e.max), (2, 800.0, 1250.0));
    assert_eq!(m.stage(Metric::SyncResponse).unwrap().max, 120.5);
    assert_eq!((m.worker.failures, m.worker.errors_by_type.get("BuildFailed")), (1, Some(&1)));
    // The origin had no fine stage fields; those figures are simply absent.
    assert!(m.stage(Metric::Handler).is_none() && m.stage(Metric::Router).is_none());
    assert_eq!(m.groups.by_component[0].key, "lw-worker");
}

#[test]
fn origin_timestamps_of_every_shape_take_part_in_the_window() {
    // Keeps the prefix-stamped worker line (10:00:00.900), the `@timestamp` router line
    // (10:00:01) and the epoch-ms worker line (10:00:02); drops the first line (10:00:00.100).
    let (out, _) = analyze(&[
        "--start",
        "2024-05-01T10:00:00.500Z",
        "--end",
        "2024-05-01T10:00:02Z",
        s(&fixture("origin-cloudwatch.log")),
    ]);
    let m = out.summary;
    assert_eq!((m.lines.router, m.lines.worker, m.lines.outside_window), (1, 2, 1));
    assert_eq!(m.window.first_line_ms, Some(1_714_557_600_900));
    assert_eq!(m.window.last_line_ms, Some(1_714_557_602_000));
}
