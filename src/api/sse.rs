//! `GET /v1/events`: the event bus as Server-Sent Events.
//!
//! Each event is one message: `id:` its sequence number, `data:` the event as JSON with its
//! `type`. A client that reads too slowly to keep up gets `{"type": "missed", "count": N}`
//! in place of the N events it lost, then the stream goes on; the daemon never waits for it.
//! Streams end when the daemon shuts down.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;

use super::error::ApiError;
use super::state::ApiState;
use crate::events::Received;

pub async fn events(
    State(state): State<ApiState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Held for as long as the stream is open.
    let permit = state
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::Unavailable(format!(
                "{} event streams are open, the most allowed (`api.max_event_streams`); \
                 close one or raise the limit",
                state.max_event_streams
            ))
        })?;
    let subscription = state.activity.subscribe();
    let stream = futures_util::stream::unfold(
        (subscription, state, permit),
        |(mut subscription, state, permit)| async move {
            let received = tokio::select! {
                _ = state.shutdown.cancelled() => return None,
                received = subscription.next() => received,
            };
            let message = match received {
                Received::Event(envelope) => SseEvent::default()
                    .id(envelope.seq.to_string())
                    .json_data(&*envelope),
                Received::Missed(count) => {
                    state.activity.metrics().events_missed(count);
                    SseEvent::default()
                        .json_data(serde_json::json!({ "type": "missed", "count": count }))
                }
                Received::Closed => return None,
            };
            let message = message
                .unwrap_or_else(|_| SseEvent::default().comment("an event could not be encoded"));
            Some((Ok(message), (subscription, state, permit)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
