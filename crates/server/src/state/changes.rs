//! The change log: how several nodes on one PostgreSQL database agree.
//!
//! Every write transaction appends one row to `state_changes` (the node that made it, what it
//! touched, when) and queues `pg_notify` on [`CHANNEL`], both inside the transaction, so the
//! row and the notification exist exactly when the change committed. Each node runs a
//! [`follow`] task: it LISTENs on its own connection and, on a notification or every
//! [`CATCH_UP_INTERVAL`] whatever happens, reads the rows after the last sequence number it
//! applied and loads again what they touched ([`super::State::apply`], the same incremental
//! path a node's own writes take). A lost notification or a dropped listening connection is
//! healed by that periodic catch-up, within a second.
//!
//! # Ordering
//! Write transactions take one advisory lock first ([`super::postgres::WRITE_LOCK`]), so the
//! change log's sequence numbers commit in order: a node that applied change N has seen every
//! change before it. A hole in the numbers (a transaction whose commit failed after its row was
//! numbered, or rows pruned while a node was away) makes the node reload its whole snapshot,
//! which is always correct.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::db::{Conn, Touched};
use super::StateError;

/// The PostgreSQL notification channel of the change log.
pub const CHANNEL: &str = "keyhole_state_changes";
/// How often a node reads the change log even without a notification.
pub const CATCH_UP_INTERVAL: Duration = Duration::from_secs(1);
/// How long change-log rows are kept (a node away longer reloads its snapshot whole).
pub const RETAIN_SECS: i64 = 3600;
/// How often a node prunes rows older than [`RETAIN_SECS`].
const PRUNE_INTERVAL: Duration = Duration::from_secs(300);
/// Most rows read in one catch-up; more than that is a whole reload.
const MAX_ROWS: i64 = 10_000;
/// Wait between attempts to open the listening connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Appends what a change touched to the change log inside the writing transaction, and queues
/// the notification PostgreSQL delivers when it commits.
pub fn record(db: &dyn Conn, node: &str, touched: &[Touched]) -> Result<(), StateError> {
    if touched.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = touched.iter().map(Touched::encode).collect();
    let text = serde_json::to_string(&list)
        .map_err(|e| StateError::Engine(format!("change log entry: {e}")))?;
    db.execute(
        "INSERT INTO state_changes (node, touched, at) VALUES (?1, ?2, ?3)",
        crate::params![node, text, chrono::Utc::now().timestamp()],
    )?;
    db.execute("SELECT pg_notify(?1, ?2)", crate::params![CHANNEL, node])?;
    Ok(())
}

/// The newest sequence number in the change log (0 when empty).
pub fn newest(db: &dyn Conn) -> Result<i64, StateError> {
    db.count(
        "SELECT coalesce(max(seq), 0) FROM state_changes",
        crate::params![],
    )
}

/// What a catch-up found after the cursor.
#[derive(Debug, PartialEq, Eq)]
pub enum Pending {
    /// Nothing new.
    Nothing,
    /// Changes to apply (other nodes' only), and the sequence number to move the cursor to.
    Apply(Vec<Touched>, i64),
    /// A hole or too many rows: reload the whole snapshot; the cursor moves to this number.
    Reload(i64),
}

/// Reads the change log after `cursor`, leaving out what `node` (this node, which applied its
/// own changes as it made them) touched; `None` leaves out nothing (after one of this node's
/// writes failed, it may have committed unseen: a COMMIT whose answer was lost).
pub fn pending(db: &dyn Conn, node: Option<&str>, cursor: i64) -> Result<Pending, StateError> {
    let rows = db.query_map(
        "SELECT seq, node, touched FROM state_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        crate::params![cursor, MAX_ROWS],
        |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
    )?;
    let Some(last) = rows.last().map(|r| r.0) else {
        // Nothing after the cursor. The log always keeps its newest row ([`prune`]), so this is
        // "nothing new" unless the log is behind the cursor: a database restored from an older
        // backup, whose snapshot this node is ahead of.
        let newest = newest(db)?;
        return Ok(if newest < cursor {
            Pending::Reload(newest)
        } else {
            Pending::Nothing
        });
    };
    let contiguous = rows
        .iter()
        .zip(cursor + 1..)
        .all(|((seq, _, _), want)| *seq == want);
    if !contiguous || rows.len() as i64 >= MAX_ROWS {
        return Ok(Pending::Reload(newest(db)?));
    }
    let mut touched = Vec::new();
    for (_, from, text) in rows {
        if node == Some(from.as_str()) {
            continue;
        }
        let list: Vec<String> = serde_json::from_str(&text)
            .map_err(|e| StateError::Engine(format!("change log entry `{text}`: {e}")))?;
        for t in list {
            match Touched::decode(&t) {
                Some(t) => touched.push(t),
                // A newer release's kind of change: only a whole reload is sure to take it.
                None => return Ok(Pending::Reload(newest(db)?)),
            }
        }
    }
    touched.sort();
    touched.dedup();
    Ok(Pending::Apply(touched, last))
}

/// Removes change-log rows older than [`RETAIN_SECS`], always keeping the newest row: a node
/// away longer than the retention then finds a row after its cursor that does not follow it
/// (a hole, so it reloads everything), never an empty log it would take for "nothing new"
/// (review 10, F1: a key deleted while a node was cut off for over an hour kept working there).
pub fn prune(db: &dyn Conn, now: i64) -> Result<u64, StateError> {
    db.execute(
        "DELETE FROM state_changes WHERE at < ?1 AND seq < (SELECT max(seq) FROM state_changes)",
        crate::params![now - RETAIN_SECS],
    )
}

/// Follows the other nodes' changes until the runtime stops: LISTEN on a connection of its own
/// (opened again after a failure), catch up on every notification and every
/// [`CATCH_UP_INTERVAL`]. Does nothing for an engine with one node.
pub async fn follow(state: Arc<super::State>) {
    let Some((config, tls)) = state.postgres_config() else {
        return;
    };
    let mut last_prune = tokio::time::Instant::now();
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, connection)) => {
                let (wake, mut woken) = tokio::sync::mpsc::unbounded_channel::<()>();
                let me = state.node_id().to_owned();
                let mut messages = Box::pin(futures_util::stream::poll_fn({
                    let mut connection = connection;
                    move |cx| connection.poll_message(cx)
                }));
                let reader = tokio::spawn(async move {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                if n.payload() != me && wake.send(()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "the change-log listener lost its connection");
                                return;
                            }
                        }
                    }
                });
                if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    tracing::warn!(error = %e, "cannot LISTEN for state changes");
                    reader.abort();
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
                tracing::debug!("following the state change log");
                let mut tick = tokio::time::interval(CATCH_UP_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    // Listening before this first catch-up: nothing committed in between is
                    // missed.
                    catch_up_logged(&state).await;
                    if last_prune.elapsed() >= PRUNE_INTERVAL {
                        last_prune = tokio::time::Instant::now();
                        let s = state.clone();
                        let pruned = super::db::blocking(move || {
                            s.with_db(|db| prune(db, chrono::Utc::now().timestamp()))
                        })
                        .await;
                        if let Err(e) = pruned {
                            tracing::warn!(error = %e, "cannot prune the state change log");
                        }
                    }
                    if reader.is_finished() {
                        break;
                    }
                    tokio::select! {
                        got = woken.recv() => {
                            if got.is_none() {
                                break;
                            }
                            // One catch-up for a burst of notifications.
                            while woken.try_recv().is_ok() {}
                        }
                        _ = tick.tick() => {}
                    }
                }
                drop(client);
            }
            Err(e) => {
                let error = match state.postgres_connect_error(e) {
                    Some(e) => e.to_string(),
                    None => String::new(),
                };
                tracing::warn!(%error, "cannot connect to follow the state change log");
                // The periodic catch-up still runs through the pool while the listener is down.
                catch_up_logged(&state).await;
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

async fn catch_up_logged(state: &Arc<super::State>) {
    let s = state.clone();
    if let Err(e) = super::db::blocking(move || s.catch_up()).await {
        tracing::warn!(error = %e, "cannot read the state change log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(db: &dyn Conn, at: i64) {
        db.execute(
            "INSERT INTO state_changes (node, touched, at) VALUES ('other', '[]', ?1)",
            crate::params![at],
        )
        .unwrap();
    }

    /// Review 10, F1: a node away longer than the retention, after every row was pruned, must
    /// see a hole (and reload), never an empty log it would take for "nothing new"; and a log
    /// behind the cursor (a database restored from an older backup) reloads too.
    #[test]
    fn pruning_keeps_the_newest_row_so_a_long_absence_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let state = super::super::State::open(dir.path(), &[1u8; 32], "111122223333").unwrap();
        state
            .with_db(|db| {
                for _ in 0..5 {
                    add(db, 100);
                }
                // The node applied up to 2, then was away while 3..5 were written and pruned.
                assert_eq!(prune(db, 100 + RETAIN_SECS + 1).unwrap(), 4);
                assert_eq!(newest(db).unwrap(), 5);
                assert_eq!(pending(db, Some("me"), 2).unwrap(), Pending::Reload(5));
                assert_eq!(pending(db, Some("me"), 5).unwrap(), Pending::Nothing);
                // Restored from a backup older than what the node applied.
                assert_eq!(pending(db, Some("me"), 9).unwrap(), Pending::Reload(5));
                Ok(())
            })
            .unwrap();
    }
}
