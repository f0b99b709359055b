//! Snapshots of the human tables (refresh with `UPDATE_EXPECT=1 cargo test -p chatops-analyze`).

use expect_test::expect;

use crate::support::{analyze, compare, fixture, s};

#[test]
fn renders_the_analysis_table() {
    let (_, table) = analyze(&[s(&fixture("known.log"))]);
    expect![[r#"
        chatops analyze: 1 input(s), 37 lines: 20 router, 12 worker metric lines
        skipped: 2 not JSON, 1 not metrics, 2 malformed
        window:  - .. - (all lines)
        lines:   2026-11-28T12:00:01.000Z .. 2026-11-28T12:00:32.000Z

        router:  20 requests, 2 errors (10.00%)
          status:        200 x18, 401 x1, 503 x1
          errors/status: 401 x1, 503 x1
          errors/type:   QueueFull x1, SignatureInvalid x1
        worker:  12 attempts, 1 failed (8.33%), 1 retries
          errors/type:   Timeout x1

        stage                  count       avg       p50       p95       p99       max   (ms)
        duration                  20     10.50     10.00     19.00     20.00     20.00
        totalE2eMs                12     295.8     60.00      2000      2000      2000
        workerDurationMs          12     180.4     30.00     990.0     990.0     990.0
        queueWaitMs               12     105.4     15.00      1095      1095      1095
        syncResponseMs            10     1.000     1.000     1.000     1.000     1.000
        asyncResponseMs           10     0.500     0.500     0.500     0.500     0.500
        routerMs                  10     0.500     0.500     0.500     0.500     0.500
        enqueueMs                 10     0.500     0.500     0.500     0.500     0.500
        handlerMs                 10     22.00     20.00     40.00     40.00     40.00
        firstResponseE2eMs        10     44.00     40.00     80.00     80.00     80.00
        lastResponseE2eMs         10     49.50     45.00     90.00     90.00     90.00

        e2e breakdown: mean 295.8 ms over 12 worker lines
          router                     0.417 ms     0.1%
          durable enqueue            0.417 ms     0.1%
          queue wait                 105.4 ms    35.6%
          handler                    174.6 ms    59.0%
          sync response              0.833 ms     0.3%
          async response             0.417 ms     0.1%
          other (unattributed)       13.75 ms     4.7%

        by component
        component          lines  errors  figure               count       avg       p50       p95       p99       max
        lw-worker              2       1  totalE2eMs               2      1500      1000      2000      2000      2000
                                          queueWaitMs              2     550.0     5.000      1095      1095      1095
        sr-worker             10       0  totalE2eMs              10     55.00     50.00     100.0     100.0     100.0
                                          queueWaitMs             10     16.50     15.00     30.00     30.00     30.00
                                          handlerMs               10     22.00     20.00     40.00     40.00     40.00

        by command
        command            lines  errors  figure               count       avg       p50       p95       p99       max
        /deploy                2       1  totalE2eMs               2      1500      1000      2000      2000      2000
                                          queueWaitMs              2     550.0     5.000      1095      1095      1095
        /echo                 30       2  duration                20     10.50     10.00     19.00     20.00     20.00
                                          totalE2eMs              10     55.00     50.00     100.0     100.0     100.0
                                          queueWaitMs             10     16.50     15.00     30.00     30.00     30.00
                                          handlerMs               10     22.00     20.00     40.00     40.00     40.00

        by quadrant
        quadrant           lines  errors  figure               count       avg       p50       p95       p99       max
        long-write             2       1  totalE2eMs               2      1500      1000      2000      2000      2000
                                          queueWaitMs              2     550.0     5.000      1095      1095      1095
        short-read            30       2  duration                20     10.50     10.00     19.00     20.00     20.00
                                          totalE2eMs              10     55.00     50.00     100.0     100.0     100.0
                                          queueWaitMs             10     16.50     15.00     30.00     30.00     30.00
                                          handlerMs               10     22.00     20.00     40.00     40.00     40.00

        by status
        status             lines  errors  figure               count       avg       p50       p95       p99       max
        200                   18       0  duration                18     9.500     9.000     18.00     18.00     18.00
        401                    1       1  duration                 1     19.00     19.00     19.00     19.00     19.00
        503                    1       1  duration                 1     20.00     20.00     20.00     20.00     20.00

        by outcome
        outcome            lines  errors  figure               count       avg       p50       p95       p99       max
        QueueFull              1       1  duration                 1     20.00     20.00     20.00     20.00     20.00
        SignatureInvalid       1       1  duration                 1     19.00     19.00     19.00     19.00     19.00
        Timeout                1       1  totalE2eMs               1      1000      1000      1000      1000      1000
                                          queueWaitMs              1     5.000     5.000     5.000     5.000     5.000
        success               29       0  duration                18     9.500     9.000     18.00     18.00     18.00
                                          totalE2eMs              11     231.8     60.00      2000      2000      2000
                                          queueWaitMs             11     114.5     18.00      1095      1095      1095
                                          handlerMs               10     22.00     20.00     40.00     40.00     40.00
    "#]]
    .assert_eq(&table);
}

#[test]
fn renders_the_approval_wait_in_the_breakdown() {
    let (_, table) = analyze(&["--no-json", s(&fixture("approvals.log"))]);
    let breakdown = &table[table.find("e2e breakdown").unwrap()..table.find("by component").unwrap()];
    expect![[r#"
        e2e breakdown: mean 45021 ms over 4 worker lines
          router                     1.250 ms     0.0%
          approval wait (human)      45000 ms   100.0%
          durable enqueue            0.750 ms     0.0%
          queue wait                 4.000 ms     0.0%
          handler                    11.75 ms     0.0%
          sync response              1.500 ms     0.0%
          async response             0.250 ms     0.0%
          other (unattributed)       1.500 ms     0.0%

    "#]]
    .assert_eq(breakdown);
}

#[test]
fn renders_the_join_table() {
    let (_, table) = analyze(&["--requests", s(&fixture("join/requests.ndjson")), s(&fixture("join/bot.log"))]);
    let join = &table[table.find("join with").unwrap()..];
    let join = join.replace(s(&fixture("join/requests.ndjson")), "requests.ndjson");
    expect![[r#"
        join with requests.ndjson: 4 client records, 4 with router line, 3 with worker line, 3 complete
          0 client only, 1 server lines without client record, 1 invalid records

        all: 4 requests, 3 complete, 0 client errors, 1 lost
          ack: client 3.250 ms = router 2.500 ms + unexplained 0.750 ms (means); client late to send by 1.000 ms (p95)
          client send ->                      mean   share       p50       p95       p99   neg
          router                             0.667    0.2%     0.500     1.000     1.000     0
          durable enqueue                    1.000    0.3%     1.000     1.000     1.000     0
          queue wait                         168.3   48.6%     3.000     500.0     500.0     0
          handler → first response           166.3   48.0%     5.500     488.0     488.0     0
          first → last response              5.333    1.5%     8.000     8.000     8.000     0
          unexplained (network, clock)       5.000    1.4%     3.000     10.00     10.00     0
          = arrival of last response         346.7  100.0%     20.00      1000      1000
          first response arrival (n=3)       341.3             12.00      1000      1000
          last response arrival (n=3)        346.7             20.00      1000      1000

        /deploy: 1 requests, 1 complete, 0 client errors, 0 lost
          ack: client 5.000 ms = router 4.000 ms + unexplained 1.000 ms (means); client late to send by 0.000 ms (p95)
          client send ->                      mean   share       p50       p95       p99   neg
          router                             1.000    0.1%     1.000     1.000     1.000     0
          durable enqueue                    1.000    0.1%     1.000     1.000     1.000     0
          queue wait                         500.0   50.0%     500.0     500.0     500.0     0
          handler → first response           488.0   48.8%     488.0     488.0     488.0     0
          first → last response              0.000    0.0%     0.000     0.000     0.000     0
          unexplained (network, clock)       10.00    1.0%     10.00     10.00     10.00     0
          = arrival of last response          1000  100.0%      1000      1000      1000
          first response arrival (n=1)        1000              1000      1000      1000
          last response arrival (n=1)         1000              1000      1000      1000

        /echo: 3 requests, 2 complete, 0 client errors, 1 lost
          ack: client 2.667 ms = router 2.000 ms + unexplained 0.667 ms (means); client late to send by 1.000 ms (p95)
          client send ->                      mean   share       p50       p95       p99   neg
          router                             0.500    2.5%     0.500     0.500     0.500     0
          durable enqueue                    1.000    5.0%     1.000     1.000     1.000     0
          queue wait                         2.500   12.5%     2.000     3.000     3.000     0
          handler → first response           5.500   27.5%     5.500     5.500     5.500     0
          first → last response              8.000   40.0%     8.000     8.000     8.000     0
          unexplained (network, clock)       2.500   12.5%     2.000     3.000     3.000     0
          = arrival of last response         20.00  100.0%     20.00     20.00     20.00
          first response arrival (n=2)       12.00             12.00     12.00     12.00
          last response arrival (n=2)        20.00             20.00     20.00     20.00
    "#]]
    .assert_eq(&join);
}

#[test]
fn renders_the_comparison_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut cand: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("results-baseline.json")).unwrap()).unwrap();
    cand["summaries"]["ack"]["p95"] = 12.0.into();
    cand["counters"]["lost"] = 0.into();
    let c = dir.path().join("cand.json");
    std::fs::write(&c, serde_json::to_vec(&cand).unwrap()).unwrap();
    let (_, table) = compare(&[s(&fixture("results-baseline.json")), s(&c)]).unwrap();
    let table = table.replace(s(&fixture("results-baseline.json")), "base.json").replace(s(&c), "cand.json");
    expect![[r#"
        baseline:  base.json
        candidate: cand.json
        tolerance 10.0%, ignoring latency changes under 1.000 ms and rate changes under 0.1 points

        figure                                baseline   candidate      change   change%  verdict
        throughput (req/s)                       99.00       99.00        0.00     +0.0%  same
        error_rate (%)                            1.00        1.00        0.00     +0.0%  same
        lost (count)                                 2           0          -2   -100.0%  better
        ack.p50 (ms)                             4.000       4.000       0.000     +0.0%  same
        ack.p95 (ms)                             8.000       12.00      +4.000    +50.0%  WORSE
        ack.p99 (ms)                             12.00       12.00       0.000     +0.0%  same
        e2e_first_response.p50 (ms)              20.00       20.00       0.000     +0.0%  same
        e2e_first_response.p95 (ms)              40.00       40.00       0.000     +0.0%  same
        e2e_first_response.p99 (ms)              60.00       60.00       0.000     +0.0%  same
        e2e_last_response.p50 (ms)               30.00       30.00       0.000     +0.0%  same
        e2e_last_response.p95 (ms)               60.00       60.00       0.000     +0.0%  same
        e2e_last_response.p99 (ms)               90.00       90.00       0.000     +0.0%  same

        verdict: REGRESSION in ack.p95
    "#]]
    .assert_eq(&table);
}
