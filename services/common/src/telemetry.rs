//! Logs and traces: JSON lines on stdout, OpenTelemetry spans, optional OTLP export.
//!
//! Every log line inside a request carries `trace_id` and `span_id` taken from the
//! OpenTelemetry span, so Loki can link a line to its trace in Tempo. Spans are always
//! created (that is where the ids come from) but only exported when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set; without it nothing leaves the process.

use std::fmt;
use std::io;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
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
struct JsonLines {
    service: &'static str,
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
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("service".into(), self.service.into());
        line.insert("target".into(), meta.target().into());

        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields)
                {
                    for (key, value) in fields {
                        if !key.starts_with("otel.") {
                            line.insert(key, value);
                        }
                    }
                }
                if let Some(otel) = extensions.get::<OtelData>() {
                    if let Some(trace_id) = otel.trace_id() {
                        line.insert("trace_id".into(), trace_id.to_string().into());
                    }
                    if let Some(span_id) = otel.span_id() {
                        line.insert("span_id".into(), span_id.to_string().into());
                    }
                }
            }
        }

        let mut event_fields = String::new();
        JsonFields::new().format_fields(Writer::new(&mut event_fields), event)?;
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&event_fields) {
            line.extend(fields);
        }

        let rendered = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{rendered}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
