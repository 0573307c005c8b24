use super::*;
use proptest::prelude::*;

const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const S: &str = "00f067aa0ba902b7";

/// (trace ID, span ID), owned.
type Ids = Option<(String, Option<String>)>;

/// What both the SIMD prefilter and the fallback find (they must agree,
/// and the IDs as metadata text must be the IDs).
fn found(line: &str) -> Ids {
    let id = |c: TraceContext| {
        assert_eq!(c.trace_meta().as_str(), c.trace_id());
        assert!(c.trace_meta().is_inline());
        assert_eq!(c.span_meta().as_deref(), c.span_id());
        (c.trace_id().to_string(), c.span_id().map(str::to_string))
    };
    let simd = Detector::default().detect(line).map(id);
    let fallback = Detector::build(Formats::ALL, false).detect(line).map(id);
    assert_eq!(simd, fallback, "{line}");
    simd
}

fn both(t: &str, s: &str) -> Ids {
    Some((t.to_string(), Some(s.to_string())))
}

fn trace_only(t: &str) -> Ids {
    Some((t.to_string(), None))
}

/// Datadog's decimal u64 as OpenTelemetry maps it.
fn dd(v: u64, width: usize) -> String {
    format!("{v:0width$x}")
}

#[test]
fn real_world_lines_from_many_ecosystems() {
    let dd_t = 5208512171318403364u64;
    let dd_s = 7727579355834089880u64;
    let cases: Vec<(&str, String, Ids)> = vec![
        ("java logback, OTel agent MDC", format!("2024-01-20 10:00:00.123 INFO [main] c.e.App - trace_id={T} span_id={S} trace_flags=01 - handled"), both(T, S)),
        ("java log4j2 JSON contextMap, span first", format!(r#"{{"level":"INFO","message":"ok","contextMap":{{"span_id":"{S}","trace_flags":"01","trace_id":"{T}"}}}}"#), both(T, S)),
        ("java, older agent MDC, uppercase hex", format!("INFO traceId={} spanId={} ok", T.to_uppercase(), S.to_uppercase()), both(T, S)),
        ("python logging instrumentation", format!("2024-01-20 10:00:00,123 INFO [app] [main.py:10] [trace_id={T} span_id={S} resource.service.name=svc trace_sampled=True] - hello"), both(T, S)),
        ("python otelTraceID format", format!("INFO otelTraceID={T} otelSpanID={S} hello"), both(T, S)),
        ("python structlog", format!(r#"{{"event": "hello", "trace_id": "{T}", "span_id": "{S}", "level": "info"}}"#), both(T, S)),
        ("go zap", format!(r#"{{"level":"info","ts":1705744800.1,"caller":"main.go:42","msg":"served","traceID":"{T}","spanID":"{S}"}}"#), both(T, S)),
        ("go zerolog", format!(r#"{{"level":"info","trace_id":"{T}","span_id":"{S}","message":"ok"}}"#), both(T, S)),
        ("go slog text", format!("time=2024-01-20T10:00:00Z level=INFO msg=served trace_id={T} span_id={S}"), both(T, S)),
        ("node pino", format!(r#"{{"level":30,"time":1705744800000,"pid":1,"trace_id":"{T}","span_id":"{S}","trace_flags":"01","msg":"request completed"}}"#), both(T, S)),
        (".NET console scopes", format!("info: Api[0] => SpanId:{S}, TraceId:{T}, ParentId:0000000000000000 => handled"), both(T, S)),
        (".NET JSON console", format!(r#"{{"EventId":0,"LogLevel":"Information","Category":"Api","Message":"ok","Scopes":[{{"SpanId":"{S}","TraceId":"{T}","ParentId":"0000000000000000"}}]}}"#), both(T, S)),
        ("nginx with $otel_trace_id", format!(r#"10.0.0.1 - - [20/Jan/2024:10:00:00 +0000] "GET /api HTTP/1.1" 200 612 "-" "curl/8.0" otel_trace_id={T} otel_span_id={S}"#), both(T, S)),
        ("envoy access log, traceparent key", format!(r#"[2024-01-20T10:00:00.000Z] "GET /api HTTP/1.1" 200 - 0 612 3 2 "10.0.0.1" "curl/8.0" traceparent="00-{T}-{S}-01""#), both(T, S)),
        ("envoy access log, bare traceparent", format!(r#"[2024-01-20T10:00:00.000Z] "GET /api HTTP/1.1" 200 - "a1b2c3d4-0000-4000-8000-000000000001" "00-{T}-{S}-01" "api.local""#), both(T, S)),
        ("datadog python", format!("2024-01-20 10:00:00,123 INFO [app] [main.py:10] [dd.service=svc dd.env=prod dd.version=1 dd.trace_id={dd_t} dd.span_id={dd_s}] - hello"), both(&dd(dd_t, 32), &dd(dd_s, 16))),
        ("datadog java JSON", format!(r#"{{"message":"ok","dd.trace_id":"{dd_t}","dd.span_id":"{dd_s}"}}"#), both(&dd(dd_t, 32), &dd(dd_s, 16))),
        ("datadog node pino nested", format!(r#"{{"level":30,"msg":"ok","dd":{{"trace_id":"{dd_t}","span_id":"{dd_s}","service":"svc"}}}}"#), both(&dd(dd_t, 32), &dd(dd_s, 16))),
        ("datadog nested numbers, not first", format!(r#"{{"msg":"ok","dd":{{"service":"svc","env":"x","trace_id":{dd_t},"span_id":{dd_s}}}}}"#), both(&dd(dd_t, 32), &dd(dd_s, 16))),
        ("datadog 128-bit ID logging", format!("msg=ok dd.trace_id={T} dd.span_id={dd_s}"), both(T, &dd(dd_s, 16))),
        ("b3 multi headers, 64-bit", "X-B3-TraceId: 463ac35c9f6413ad X-B3-SpanId: a2fb4a1d1a96d312 X-B3-Sampled: 1".into(), both("0000000000000000463ac35c9f6413ad", "a2fb4a1d1a96d312")),
        ("b3 multi headers, go map form", "headers=map[X-B3-Sampled:[1] X-B3-Spanid:[a2fb4a1d1a96d312] X-B3-Traceid:[463ac35c9f6413ad48485a3953bb6124]]".into(), both("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312")),
        ("b3 single, all parts", "b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90".into(), both("80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1")),
        ("b3 single, logfmt, 64-bit", "msg=call b3=463ac35c9f6413ad-e457b5a2e4d86bd1 ok".into(), both("0000000000000000463ac35c9f6413ad", "e457b5a2e4d86bd1")),
        ("b3 single, python dict", format!("headers={{'b3': '{T}-{S}'}}"), both(T, S)),
        ("b3 single, JSON", format!(r#"{{"b3":"{T}-{S}-0"}}"#), both(T, S)),
        ("B3 single uppercase key, sampled", "B3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d".into(), both("80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1")),
        ("jaeger uber-trace-id", format!("uber-trace-id: {T}:{S}:0:1"), both(T, S)),
        ("jaeger without leading zeros", "Uber-Trace-Id=463ac35c9f6413ad:a2fb4a1d1a96d31:0:1".into(), both("0000000000000000463ac35c9f6413ad", "0a2fb4a1d1a96d31")),
        ("jaeger url-encoded", format!("uber-trace-id={T}%3A{S}%3A0%3A1"), both(T, S)),
        ("aws x-ray header", "X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(), both("5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8")),
        ("aws alb access log", r#"http 2024-01-20T10:00:00.000Z app/lb 10.0.0.1:1234 10.0.0.2:80 0.001 0.002 0.000 200 200 34 366 "GET http://x:80/ HTTP/1.1" "curl/8.0" - - arn:aws:tg "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-""#.into(), trace_only("5833726236d228ad5d99923122bbe354")),
        ("ECS dotted", format!(r#"{{"@timestamp":"2024-01-20T10:00:00Z","log.level":"info","message":"ok","trace.id":"{T}","span.id":"{S}","transaction.id":"{S}"}}"#), both(T, S)),
        ("ECS nested", format!(r#"{{"message":"ok","trace":{{"id":"{T}"}},"span":{{"id":"{S}"}}}}"#), both(T, S)),
        ("ECS nested, id not first", format!(r#"{{"message":"ok","span":{{"name":"x","id":"{S}"}},"trace":{{"sampled":true,"id":"{T}"}}}}"#), both(T, S)),
        ("traceparent JSON field", format!(r#"{{"traceparent":"00-{T}-{S}-01","msg":"x"}}"#), both(T, S)),
        ("traceparent, a later version", format!("traceparent: 01-{T}-{S}-01-what-comes-next"), both(T, S)),
        ("traceID: value", format!("traceID: {T} spanID: {S}"), both(T, S)),
        ("trace-id=", format!("trace-id={T} span-id={S}"), both(T, S)),
        ("quoted logfmt", format!(r#"trace_id="{T}" span_id="{S}""#), both(T, S)),
        ("ruby hash", format!(r#"{{"trace_id"=>"{T}", "span_id"=>"{S}"}}"#), both(T, S)),
        ("dotted prefix", format!("mdc.trace_id={T} mdc.span_id={S}"), both(T, S)),
        ("upper-case key", format!("TRACE_ID={T} SPAN_ID={S}"), both(T, S)),
        ("escaped JSON in a message", format!(r#"{{"msg":"{{\"trace_id\":\"{T}\",\"span_id\":\"{S}\"}}"}}"#), both(T, S)),
        ("trace only", format!("trace_id={T} msg=x"), trace_only(T)),
        ("otel wins over traceparent", format!("traceparent=00-{}-{}-01 trace_id={T} span_id={S}", "1".repeat(32), "2".repeat(16)), both(T, S)),
        ("header first in line wins among headers", format!("b3={}-{} traceparent=00-{T}-{S}-01", "1".repeat(32), "2".repeat(16)), both(&"1".repeat(32), &"2".repeat(16))),
        ("invalid otel value falls back to traceparent", format!("trace_id=none traceparent=00-{T}-{S}-01"), both(T, S)),
        ("all-zero span is no span", format!("trace_id={T} span_id=0000000000000000"), trace_only(T)),
        ("span of another form is not taken", format!("X-B3-TraceId: {T} span_id={S}"), trace_only(T)),
        ("otel span not taken for datadog", format!("dd.trace_id={dd_t} span_id={S}"), trace_only(&dd(dd_t, 32))),
        ("parent_span_id is not span_id", format!("trace_id={T} parent_span_id={S}"), trace_only(T)),
    ];
    let mut failed = Vec::new();
    for (name, line, want) in &cases {
        let got = found(line);
        if got != *want {
            failed.push(format!("{name}: {line}\n  got  {got:?}\n  want {want:?}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn lines_that_carry_no_trace_id() {
    let zeros32 = "0".repeat(32);
    let lines = [
        // No key: UUIDs, git SHAs, md5 sums, bare 32-hex.
        "request 4bf92f35-77b3-4da6-a3ce-929d0e0e4736 done".to_string(),
        format!("commit {T}abcdef12"),
        format!("md5={T}"),
        format!("md5sum: {T}  file.tar.gz"),
        T.to_string(),
        format!(r#"{{"id":"{T}","hash":"{T}"}}"#),
        // A key, but a bad value.
        "trace_id=4bf92f35-77b3-4da6-a3ce-929d0e0e4736".into(),
        format!("trace_id={T}abcdef12"),
        format!("trace_id={}", &T[..31]),
        format!("trace_id={}g", &T[..31]),
        format!("trace_id={zeros32}"),
        format!("trace_id={S}"),
        format!("trace_id=0x{T}"),
        format!("trace_id={T}-x"),
        "trace_id= span_id=".into(),
        // Not the key: word boundaries.
        format!("xtrace_id={T}"),
        format!("trace_idx={T}"),
        format!("my_trace_id={T}"),
        format!("subtrace.idx={T}"),
        format!("ab3={T}-{S}"),
        format!("{T}b3={T}-{S}"),
        // The key word without a separator, or in a message.
        format!("level=trace msg=\"trace_id missing\" {T}"),
        format!("stacktrace {T}"),
        // Traceparent shapes that are not valid.
        format!("00-{zeros32}-{S}-01"),
        format!("00-{T}-0000000000000000-01"),
        format!("00-{T}-{}-01", &S[..14]),
        format!("00-{T}-{S}-1"),
        format!("00-{T}-{S}-01-extra"),
        format!("x00-{T}-{S}-01"),
        format!("ff-{T}-{S}-01"),
        format!("traceparent=ff-{T}-{S}-01"),
        format!("01-{T}-{S}-01"),
        // Dates and times with `00-`.
        "2000-01-01T00:00:00Z 100-200 00-00-00".into(),
        // B3.
        "X-B3-TraceId: 463ac35c9f6413a".into(),
        format!("X-B3-TraceId: {T}0"),
        "b3: 0".into(),
        // (Documented: the key must touch its separator.)
        format!("b3 : {T}-{S}"),
        "b3: 1".into(),
        format!("b3: {T}"),
        format!("b3: {T}-{S}-x"),
        format!("b3: {T}-{}", &S[..15]),
        // Jaeger.
        format!("uber-trace-id: {T}:{S}:0"),
        format!("uber-trace-id: {T}1:{S}:0:1"),
        format!("uber-trace-id: 0:{S}:0:1"),
        // X-Ray.
        "Root=2-5759e988-bd862e3fe1be46a994272793".into(),
        "Root=1-5759e988-bd862e3fe1be46a99427279".into(),
        "Root=1-5759e988bd862e3fe1be46a994272793".into(),
        "xRoot=1-5759e988-bd862e3fe1be46a994272793".into(),
        "Root=1-00000000-000000000000000000000000".into(),
        // Datadog.
        "dd.trace_id=0 dd.span_id=1".into(),
        "dd.trace_id=18446744073709551616".into(),
        "dd.trace_id=1.5".into(),
        "dd.trace_id=-5".into(),
        r#"{"dd":{"trace_id":"abc"}}"#.into(),
        r#"{"other":{"trace_id":123}}"#.into(),
        // Nested objects that are not trace context.
        format!(r#"{{"trace":{{"name":"{T}"}}}}"#),
        format!(r#"{{"trace":"{T}"}}"#),
        String::new(),
    ];
    for l in &lines {
        assert_eq!(found(l), None, "{l}");
    }
}

#[test]
fn formats_narrow_what_is_found() {
    let line = format!("traceparent=00-{T}-{S}-01");
    let only = |f: Format| Detector::new(Formats::NONE.with(f));
    assert!(only(Format::W3c).detect(&line).is_some());
    assert!(only(Format::Otel).detect(&line).is_none());
    let otel = format!("trace_id={T}");
    assert_eq!(
        only(Format::Otel).detect(&otel).map(|c| c.format()),
        Some(Format::Otel)
    );
    assert!(only(Format::B3).detect(&otel).is_none());
    assert!(only(Format::Datadog).detect("dd.trace_id=12").is_some());
    assert!(only(Format::Otel).detect("dd.trace_id=12").is_none());
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793";
    assert!(only(Format::Xray).detect(xray).is_some());
    assert!(only(Format::W3c).detect(xray).is_none());
    assert!(only(Format::Jaeger)
        .detect(&format!("uber-trace-id: {T}:{S}:0:1"))
        .is_some());
    assert!(only(Format::B3).detect(&format!("b3: {T}-{S}")).is_some());
    assert!(Detector::new(Formats::NONE).detect(&line).is_none());
    // The other forms in the line are still read when one is off.
    let both = format!("trace_id={T} traceparent=00-{}-{S}-01", "1".repeat(32));
    assert_eq!(
        only(Format::W3c)
            .detect(&both)
            .map(|c| c.trace_id().to_string()),
        Some("1".repeat(32))
    );
}

#[test]
fn formats_by_name() {
    for (f, n) in Format::ALL.iter().zip(Format::NAMES) {
        assert_eq!(Format::parse(n), Some(*f));
        assert_eq!(f.name(), n);
    }
    assert_eq!(Format::parse("W3C"), Some(Format::W3c));
    assert_eq!(Format::parse("zipkin"), None);
    let all: Formats = Format::ALL.into_iter().collect();
    assert_eq!(all, Formats::ALL);
}

#[test]
fn a_named_field_may_hold_a_bare_id() {
    let d = Detector::default();
    let id = |c: Option<TraceContext>| {
        c.map(|c| (c.trace_id().to_string(), c.span_id().map(str::to_string)))
    };
    assert_eq!(id(d.detect_field("tid", T)), trace_only(T));
    assert_eq!(
        id(d.detect_field("tid", &format!(" \"{T}\" "))),
        trace_only(T)
    );
    assert_eq!(
        id(d.detect_field("tp", &format!("00-{T}-{S}-01"))),
        both(T, S)
    );
    assert_eq!(
        id(d.detect_field("dd.trace_id", "12")),
        trace_only(&dd(12, 32))
    );
    assert_eq!(
        id(d.detect_field("x_b3_traceid", "463ac35c9f6413ad")),
        trace_only("0000000000000000463ac35c9f6413ad")
    );
    assert_eq!(
        id(d.detect_field("content", &format!("msg=x trace_id={T}"))),
        trace_only(T)
    );
    assert_eq!(d.detect_field("tid", S), None);
    assert_eq!(d.detect_field("tid", &"0".repeat(32)), None);
    assert_eq!(d.detect_field("span_id", S), None);
    assert_eq!(
        Detector::new(Formats::NONE.with(Format::B3)).detect_field("tid", T),
        None
    );
}

#[test]
fn json_lookups_are_bounded() {
    // The enclosing `dd` object is more than the scan limit away.
    let far = format!(
        r#"{{"dd":{{"pad":"{}","trace_id":12}}}}"#,
        "x".repeat(JSON_SCAN_LIMIT)
    );
    assert_eq!(found(&far), None);
    let near = r#"{"dd":{"pad":"x","trace_id":12}}"#;
    assert_eq!(found(near), trace_only(&dd(12, 32)));
}

/// A nonzero hex ID of `n` digits.
fn hex_id_strategy(n: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9a-f]{{{n}}}"))
        .unwrap_or_else(|_| unreachable!())
        .prop_filter("not all zero", |s| s.bytes().any(|c| c != b'0'))
}

/// Text that cannot make a form: no hex letters or digits, no `=`/`:`,
/// no upper case.
fn filler() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[g-z ,;]{0,40}").unwrap_or_else(|_| unreachable!())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = String::from_utf8_lossy(&b);
        let d = Detector::default();
        let _ = d.detect(&s);
        let _ = d.detect_field("trace_id", &s);
    }

    #[test]
    fn looking_keys_up_as_written_changes_no_answer(
        k in "(trace|span|Trace|TRACE|span)?[_.\\-]?(id|Id|ID|iD)?[_d]?",
    ) {
        prop_assert_eq!(classify_exact(k.as_bytes()), classify_normalised(k.as_bytes()));
    }

    #[test]
    fn never_panics_on_near_misses(s in "[0-9a-fA-FtTrRcCoO\"{}:=;.\\-_ \\[\\]%3bBdDpPnNxXiI]{0,300}") {
        let d = Detector::default();
        let _ = d.detect(&s);
        let _ = d.detect_field("dd", &s);
    }

    #[test]
    fn never_panics_on_form_fragments(parts in proptest::collection::vec(prop_oneof![
        Just("trace_id"), Just("\"trace\":{"), Just("\"dd\":{\"trace_id\":"), Just("span_id"),
        Just("00-"), Just("Root=1-"), Just("b3="), Just("uber-trace-id:"), Just("\""), Just("\\"),
        Just("{"), Just("}"), Just(":"), Just("="), Just("-"), Just("4bf92f3577b34da6"), Just("1234"),
        Just(";Parent="), Just("%3A"), Just("["), Just(","),
    ], 0..40)) {
        let s: String = parts.concat();
        let _ = Detector::default().detect(&s);
    }

    #[test]
    fn an_embedded_id_is_found_in_every_form(
        t in hex_id_strategy(32),
        s in hex_id_strategy(16),
        form in 0usize..14,
        pre in filler(),
        post in filler(),
        upper in any::<bool>(),
    ) {
        let (tt, ss) = if upper { (t.to_uppercase(), s.to_uppercase()) } else { (t.clone(), s.clone()) };
        let d64 = u64::from_str_radix(&s, 16).unwrap_or(1).max(1);
        let (text, want_t, want_s) = match form {
            0 => (format!("00-{tt}-{ss}-01"), t.clone(), Some(s.clone())),
            1 => (format!("traceparent=\"00-{tt}-{ss}-01\""), t.clone(), Some(s.clone())),
            2 => (format!("trace_id={tt} span_id={ss}"), t.clone(), Some(s.clone())),
            3 => (format!(r#"{{"traceId":"{tt}","spanId":"{ss}"}}"#), t.clone(), Some(s.clone())),
            4 => (format!(r#"{{"trace":{{"id":"{tt}"}},"span":{{"id":"{ss}"}}}}"#), t.clone(), Some(s.clone())),
            5 => (format!("otelTraceID: {tt} otelSpanID: {ss}"), t.clone(), Some(s.clone())),
            6 => (format!("X-B3-TraceId: {tt} X-B3-SpanId: {ss}"), t.clone(), Some(s.clone())),
            7 => (format!("X-B3-TraceId: {} X-B3-SpanId: {ss}", &tt[16..]), format!("{}{}", "0".repeat(16), &t[16..]), Some(s.clone())),
            8 => (format!("b3: {tt}-{ss}-1"), t.clone(), Some(s.clone())),
            9 => (format!("uber-trace-id: {tt}:{ss}:0:1"), t.clone(), Some(s.clone())),
            10 => (format!("Root=1-{}-{};Parent={ss}", &tt[..8], &tt[8..]), t.clone(), Some(s.clone())),
            11 => (format!("dd.trace_id={d64} dd.span_id={d64}"), format!("{d64:032x}"), Some(format!("{d64:016x}"))),
            12 => (format!(r#"{{"dd":{{"trace_id":"{d64}","span_id":{d64}}}}}"#), format!("{d64:032x}"), Some(format!("{d64:016x}"))),
            _ => (format!("trace-id=\"{tt}\""), t.clone(), None),
        };
        let line = format!("{pre} {text} {post}");
        let got = Detector::default().detect(&line);
        prop_assert!(got.is_some(), "{}", line);
        let got = got.unwrap_or_else(|| unreachable!());
        prop_assert_eq!(got.trace_id(), want_t.as_str(), "{}", line);
        prop_assert_eq!(got.span_id(), want_s.as_deref(), "{}", line);
    }

    #[test]
    fn text_without_the_forms_yields_nothing(s in "[0-9a-zA-Z \\-_.,/\"{}\\[\\]]{0,300}") {
        // Keys need `=` or `:`; a traceparent needs 55 bytes of one exact
        // shape; neither comes out of this alphabet but by a miracle.
        prop_assert!(Detector::default().detect(&s).is_none(), "{}", s);
    }

    #[test]
    fn bare_ids_are_never_trace_ids(ids in proptest::collection::vec(
        prop_oneof![hex_id_strategy(32), hex_id_strategy(16), hex_id_strategy(40),
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"], 1..6),
        sep in prop_oneof![Just(" "), Just(", "), Just(" id="), Just(" md5: "), Just("\",\"hash\":\"")],
    ) {
        let line = ids.join(sep);
        prop_assert!(Detector::default().detect(&line).is_none(), "{}", line);
    }
}

#[test]
fn every_key_is_told_apart_and_near_misses_are_not_keys() {
    for (word, want) in [
        ("trace_id", Some(Key::OtelTrace)),
        ("TRACE-ID", Some(Key::OtelTrace)),
        ("mdc.trace_id", Some(Key::OtelTrace)),
        ("X-B3-SpanId", Some(Key::B3Span)),
        ("uber-trace-id", Some(Key::Uber)),
        ("traceparent", Some(Key::Traceparent)),
        ("trace_parent_", Some(Key::Traceparent)),
        ("dd", Some(Key::DdObject)),
        ("d", None),
        ("dd\0", None),
        ("\0dd", None),
        ("traceidx", None),
        ("xtraceid", None),
        ("traceparenttraceparent", None),
        ("", None),
    ] {
        assert_eq!(classify(word.as_bytes()), want, "{word:?}");
    }
}

#[test]
fn a_key_looked_up_as_written_is_what_normalising_it_gives() {
    for &(k, v) in AS_WRITTEN {
        assert_eq!(classify_normalised(k), Some(v), "{:?}", ascii(k));
    }
}

#[test]
fn a_lowercase_span_key_is_taken_before_an_upper_case_one() {
    let other = "1111111111111111";
    let upper_first = format!("SPAN_ID={other} trace_id={T} span_id={S}");
    assert_eq!(found(&upper_first), both(T, S));
    let lower_first = format!("span_id={S} trace_id={T} SPAN_ID={other}");
    assert_eq!(found(&lower_first), both(T, S));
    // A span key whose value is no ID is passed over.
    let bad = format!("span_id=xyz trace_id={T} SPAN_ID={S}");
    assert_eq!(found(&bad), both(T, S));
}
