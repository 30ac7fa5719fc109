use super::*;
use crate::daemon::status::{Combined, NtpStatus, OutputStatus, ReloadStatus, SourceStatus};

fn status() -> Status {
    Status {
        version: "0.1.0".into(),
        sources: vec![
            SourceStatus {
                url: "https://a.example/".into(),
                mode: "json".into(),
                state: "selected".into(),
                reach: "377".into(),
                polls: 9,
                offset: Some(0.25),
                delay: Some(0.002),
                jitter: Some(0.0001),
                distance: Some(0.0011),
                last_success: Some(1_700_000_000.5),
                ..Default::default()
            },
            SourceStatus {
                url: "wss://b.example/".into(),
                mode: "ws".into(),
                state: "candidate".into(),
                reach: "0".into(),
                polls: 3,
                noselect: true,
                failures: [("connect".to_owned(), 3)].into_iter().collect(),
                ..Default::default()
            },
        ],
        combined: Some(Combined {
            offset: 0.25,
            error: 0.0012,
            survivors: 1,
            best: "https://a.example/".into(),
            at: 1_700_000_001.0,
        }),
        synchronised: true,
        outputs: vec![OutputStatus {
            name: "shm:2".into(),
            last_write: Some(1_700_000_001.0),
            writes: 7,
            failures: 1,
            last_error: None,
            ntp: None,
        }],
        reloads: ReloadStatus {
            ok: 1,
            failed: 2,
            last: Some((1_700_000_002.0, false)),
        },
        ..Default::default()
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn the_daemon_status_becomes_metrics_with_units_labels_and_types() {
    let text = Snapshot::daemon(status()).render(Format::OpenMetrics);
    let l = lines(&text);
    for want in [
        "# TYPE webntpd_source_offset_seconds gauge",
        "# UNIT webntpd_source_offset_seconds seconds",
        "webntpd_source_offset_seconds{url=\"https://a.example/\",mode=\"json\"} 0.25",
        "webntpd_source_reach{url=\"https://a.example/\",mode=\"json\"} 255.0",
        "webntpd_source_reach{url=\"wss://b.example/\",mode=\"ws\"} 0.0",
        "webntpd_source_last_success_timestamp_seconds{url=\"https://a.example/\",mode=\"json\"} 1700000000.5",
        "webntpd_source_state{url=\"https://a.example/\",mode=\"json\",state=\"selected\"} 1.0",
        "webntpd_source_state{url=\"https://a.example/\",mode=\"json\",state=\"falseticker\"} 0.0",
        // A noselect source that measured is noselect, whatever selection made of it.
        "webntpd_source_state{url=\"wss://b.example/\",mode=\"ws\",state=\"noselect\"} 1.0",
        "webntpd_source_state{url=\"wss://b.example/\",mode=\"ws\",state=\"candidate\"} 0.0",
        "# TYPE webntpd_source_polls counter",
        "webntpd_source_polls_total{url=\"wss://b.example/\",mode=\"ws\"} 3",
        "webntpd_source_failures_total{url=\"wss://b.example/\",mode=\"ws\",reason=\"connect\"} 3",
        "webntpd_combined_offset_seconds 0.25",
        "webntpd_combined_survivors 1.0",
        "webntpd_synchronised 1.0",
        "webntpd_output_writes_total{output=\"shm:2\"} 7",
        "webntpd_output_failures_total{output=\"shm:2\"} 1",
        "webntpd_output_last_write_timestamp_seconds{output=\"shm:2\"} 1700000001.0",
        "webntpd_reloads_total{result=\"ok\"} 1",
        "webntpd_reloads_total{result=\"failed\"} 2",
        "webntpd_reload_success 0.0",
        "webntpd_build_info{version=\"0.1.0\"} 1",
        "# EOF",
    ] {
        assert!(l.contains(&want), "missing {want:?} in\n{text}");
    }
    // A source without a measurement has no offset series, not a zero.
    assert!(!text.contains("webntpd_source_offset_seconds{url=\"wss://b.example/\""));
    // No server, no server metrics.
    assert!(!text.contains("webntpd_server_"), "{text}");
}

#[test]
fn an_ntp_output_gets_its_served_and_dropped_counts_by_reason() {
    let mut st = status();
    st.outputs.push(OutputStatus {
        name: "ntp:127.0.0.1:123".into(),
        writes: 4,
        ntp: Some(NtpStatus {
            synchronised: true,
            root_dispersion: 0.0015,
            served: 120,
            served_unsynchronised: 2,
            kisses: 1,
            dropped: [("rate-limited".to_owned(), 5), ("mode 6/7".to_owned(), 0)]
                .into_iter()
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let text = Snapshot::daemon(st).render(Format::OpenMetrics);
    let l = lines(&text);
    for want in [
        "# TYPE webntpd_ntp_served counter",
        "webntpd_ntp_served_total{output=\"ntp:127.0.0.1:123\"} 120",
        "webntpd_ntp_served_unsynchronised_total{output=\"ntp:127.0.0.1:123\"} 2",
        "webntpd_ntp_kiss_of_death_total{output=\"ntp:127.0.0.1:123\"} 1",
        "webntpd_ntp_dropped_total{output=\"ntp:127.0.0.1:123\",reason=\"rate_limited\"} 5",
        "webntpd_ntp_dropped_total{output=\"ntp:127.0.0.1:123\",reason=\"control\"} 0",
        "webntpd_ntp_synchronised{output=\"ntp:127.0.0.1:123\"} 1.0",
        "webntpd_ntp_root_dispersion_seconds{output=\"ntp:127.0.0.1:123\"} 0.0015",
    ] {
        assert!(l.contains(&want), "missing {want:?} in\n{text}");
    }
    // The SHM output is no NTP server: it has no NTP series.
    assert!(
        !text.contains("webntpd_ntp_served_total{output=\"shm:2\"}"),
        "{text}"
    );
}

#[test]
fn the_prometheus_text_format_names_counters_with_their_suffix() {
    let text = Snapshot::daemon(status()).render(Format::Prometheus);
    let l = lines(&text);
    assert!(
        l.contains(&"# TYPE webntpd_source_polls_total counter"),
        "{text}"
    );
    assert!(
        l.contains(&"# TYPE webntpd_source_offset_seconds gauge"),
        "{text}"
    );
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
}

#[test]
fn server_counters_become_counters_gauges_and_a_histogram() {
    let counters = ServerCounters {
        requests: [("json".to_owned(), 5), ("ws".to_owned(), 2)]
            .into_iter()
            .collect(),
        rejected: [("host".to_owned(), 1)].into_iter().collect(),
        connections: 3,
        max_connections: 100,
        websockets: 1,
        latency: crate::server::stats::Latency {
            bounds: vec![0.001, 0.01],
            counts: vec![4, 2, 1],
            sum: 0.5,
        },
        leap_list_expires: Some(1_782_604_800),
        leap_refresh: Some((1_700_000_000.0, true)),
        ..Default::default()
    };
    let text = Snapshot::server(counters).render(Format::OpenMetrics);
    let l = lines(&text);
    for want in [
        "webntpd_server_requests_total{kind=\"json\"} 5",
        "webntpd_server_rejected_total{reason=\"host\"} 1",
        "webntpd_server_connections 3.0",
        "webntpd_server_websockets 1.0",
        "# TYPE webntpd_server_reply_latency_seconds histogram",
        "webntpd_server_reply_latency_seconds_count 7",
        "webntpd_server_reply_latency_seconds_bucket{le=\"0.001\"} 4",
        "webntpd_server_reply_latency_seconds_bucket{le=\"0.01\"} 6",
        "webntpd_server_reply_latency_seconds_bucket{le=\"+Inf\"} 7",
        "webntpd_server_leap_list_expiry_timestamp_seconds 1782604800.0",
        "webntpd_server_leap_refresh_success 1.0",
    ] {
        assert!(l.contains(&want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("webntpd_source_"), "{text}");
}

#[test]
fn scrapers_get_openmetrics_only_when_they_ask_for_it() {
    let prometheus = b"application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                       version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(
        Format::from_accept(Some(b"Application/OpenMetrics-Text")),
        Format::OpenMetrics
    );
    assert_eq!(Format::from_accept(Some(b"*/*")), Format::Prometheus);
    assert_eq!(Format::from_accept(None), Format::Prometheus);
}
