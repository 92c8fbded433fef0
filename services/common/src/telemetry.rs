//! Logs and traces: JSON lines on stdout, OpenTelemetry spans, optional OTLP export.
//!
//! Every log line inside a request carries `trace_id` and `span_id` taken from the
//! OpenTelemetry span, so Loki can link a line to its trace in Tempo. Spans are created
//! for every request (that is where the ids come from), except the requests a sampled
//! access log skips when nothing exports them (see `observe`). They are exported only
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; without it nothing leaves the process.

use std::fmt;
use std::io;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_opentelemetry::OtelData;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Flushes exported spans when dropped. Drop it outside the async runtime: the OTLP
/// exporter uses a blocking HTTP client.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    /// Writes what is still queued for stdout when dropped.
    _log_writer: Option<WorkerGuard>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("telemetry: flushing spans failed: {err}");
        }
    }
}

/// Set once spans are exported (an OTLP endpoint is configured).
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process exports its spans: then every request needs one, sampled or not.
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs logging and tracing for a service process, from `RUST_LOG` (default `info`)
/// and `OTEL_EXPORTER_OTLP_ENDPOINT`.
///
/// Lines go to stdout through a writer thread: a request formats its access line and
/// queues it, and the thread writes what has queued up in batches. Writing each line to
/// stdout from the request's own thread (a locked `write` per line) halved the rate of a
/// cached listing. The queue is lossless: when it is full, requests wait for it rather
/// than lines being dropped.
pub fn init(service: &'static str) -> anyhow::Result<TelemetryGuard> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|value| !value.trim().is_empty());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(io::stdout());
    let mut telemetry = init_with(service, writer, endpoint.as_deref())?;
    telemetry._log_writer = Some(guard);
    Ok(telemetry)
}

/// Like [`init`], with the log destination and exporter endpoint given explicitly (tests
/// capture logs in memory).
pub fn init_with<W>(
    service: &'static str,
    writer: W,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<TelemetryGuard>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let provider = tracer_provider(service, otlp_endpoint)?;
    EXPORTING.store(
        otlp_endpoint.is_some(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let tracer = provider.tracer(service);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines { service })
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(logs)
        .try_init()
        .context("a global tracing subscriber is already installed")?;
    Ok(TelemetryGuard {
        provider,
        _log_writer: None,
    })
}

fn tracer_provider(
    service: &'static str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder().with_service_name(service).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(traces_endpoint(endpoint))
            .build()
            .context("building the OTLP span exporter")?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// The OTLP/HTTP traces URL for a base endpoint, as the OpenTelemetry spec derives it
/// from `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_endpoint(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// One JSON object per line: time, level, service, target, message, the event's fields,
/// the fields of the spans it happened in, and the OpenTelemetry trace and span ids.
///
/// Every request writes one, so the line is assembled from the fields' JSON text as it
/// is: the spans' fields (already JSON, from `JsonFields`) are split into raw values, not
/// parsed into values and rendered again. Nothing but the line itself is allocated per
/// field.
struct JsonLines {
    service: &'static str,
}

/// A field's value: JSON text as recorded, or a string to encode.
enum FieldValue<'a> {
    Raw(&'a RawValue),
    Text(String),
}

/// Fields by name in first-seen order; a later value for a name replaces the earlier one
/// where it stands (inner spans override outer ones, the event overrides its spans).
#[derive(Default)]
struct Fields<'a>(Vec<(Cow<'a, str>, FieldValue<'a>)>);

impl<'a> Fields<'a> {
    fn set(&mut self, name: Cow<'a, str>, value: FieldValue<'a>) {
        match self.0.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((name, value)),
        }
    }

    /// The members of a JSON object's text, skipping the `otel.*` span settings.
    fn extend_from_object(&mut self, json: &'a str, skip_otel: bool) {
        if let Ok(Members(members)) = serde_json::from_str::<Members<'a>>(json) {
            for (name, value) in members {
                if !(skip_otel && name.starts_with("otel.")) {
                    self.set(name, FieldValue::Raw(value));
                }
            }
        }
    }

    fn write_line(&self, line: &mut Vec<u8>) -> serde_json::Result<()> {
        line.push(b'{');
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            serde_json::to_writer(&mut *line, name.as_ref())?;
            line.push(b':');
            match value {
                FieldValue::Raw(raw) => line.extend_from_slice(raw.get().as_bytes()),
                FieldValue::Text(text) => serde_json::to_writer(&mut *line, text)?,
            }
        }
        line.extend_from_slice(b"}\n");
        Ok(())
    }
}

/// A JSON object's members with their values left as text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // The spans' field text is copied out of their extensions (locked while read).
        let mut span_fields = Vec::new();
        let mut ids = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() {
                    span_fields.push(fields.fields.clone());
                }
                if let Some(otel) = extensions.get::<OtelData>()
                    && let (Some(trace_id), Some(span_id)) = (otel.trace_id(), otel.span_id())
                {
                    ids = Some((trace_id.to_string(), span_id.to_string()));
                }
            }
        }
        let mut event_fields = String::new();
        JsonFields::new().format_fields(Writer::new(&mut event_fields), event)?;

        let mut fields = Fields::default();
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        fields.set("timestamp".into(), FieldValue::Text(timestamp));
        fields.set(
            "level".into(),
            FieldValue::Text(meta.level().as_str().into()),
        );
        fields.set("service".into(), FieldValue::Text(self.service.into()));
        fields.set("target".into(), FieldValue::Text(meta.target().into()));
        for json in &span_fields {
            fields.extend_from_object(json, true);
        }
        if let Some((trace_id, span_id)) = ids {
            fields.set("trace_id".into(), FieldValue::Text(trace_id));
            fields.set("span_id".into(), FieldValue::Text(span_id));
        }
        fields.extend_from_object(&event_fields, false);

        let mut line = Vec::with_capacity(256);
        fields.write_line(&mut line).map_err(|_| fmt::Error)?;
        writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use super::*;

    /// Lines written to memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_has_the_spans_fields_inner_first_then_the_events_and_no_otel_settings() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines { service: "test" })
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer", route = "/outer", kept = 1, otel.name = "x");
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", route = "/inner", status = 200_u16);
            let _inner = inner.enter();
            tracing::info!(
                status = 503_u16,
                quoted = "a \"b\"\nc",
                "request \"completed\""
            );
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: Value = serde_json::from_str(&text).expect("one JSON object");
        assert_eq!(line["service"], "test");
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            line["route"], "/inner",
            "the inner span overrides the outer"
        );
        assert_eq!(line["kept"], 1);
        assert_eq!(line["status"], 503, "the event overrides its spans");
        assert_eq!(line["quoted"], "a \"b\"\nc");
        assert_eq!(line["message"], "request \"completed\"");
        assert!(line.get("otel.name").is_none(), "{text}");
        let keys: Vec<&str> = text.match_indices("\"route\"").map(|(_, k)| k).collect();
        assert_eq!(keys.len(), 1, "each name once: {text}");
    }

    #[test]
    fn traces_endpoint_follows_the_otlp_spec() {
        assert_eq!(
            traces_endpoint("http://tempo:4318"),
            "http://tempo:4318/v1/traces"
        );
        assert_eq!(
            traces_endpoint("http://tempo:4318/"),
            "http://tempo:4318/v1/traces"
        );
        assert_eq!(
            traces_endpoint("http://tempo:4318/v1/traces"),
            "http://tempo:4318/v1/traces"
        );
    }
}
