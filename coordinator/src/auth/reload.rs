//! The tokens file is followed while the coordinator serves, so that a token
//! removed from it stops working within a second, without a restart: its size
//! and mtime are polled every [`POLL`], and SIGHUP reloads it at once (for
//! edits that keep both, or for whoever prefers to say when).

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::store::Refresh;
use super::{Auth, TokenStore};

/// Revocations take effect within this, plus the time to read the file.
pub const POLL: Duration = Duration::from_millis(500);

/// Whether `auth`'s tokens come from a file, which [`watch`] then follows.
pub fn follows_file(auth: &Auth) -> bool {
    matches!(auth, Auth::Tokens(s) if s.path().is_some())
}

/// Follow the tokens file of `auth` until `cancel`. Returns at once when the
/// tokens do not come from a file (auth off, tokens made in-process): see
/// [`follows_file`].
pub async fn watch(auth: Auth, cancel: CancellationToken) {
    let store = match auth {
        Auth::Tokens(s) if s.path().is_some() => s,
        _ => return,
    };
    let file = store
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, file, "cannot listen for SIGHUP; the tokens file is still reloaded when it changes");
            None
        }
    };
    tracing::info!(file, every = ?POLL, "following the tokens file: edits apply without a restart; SIGHUP reloads at once");
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let force = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => false,
            () = hangup(&mut hup) => true,
        };
        refresh(&store, &file, force).await;
    }
}

/// The next SIGHUP; never, without a listener.
async fn hangup(hup: &mut Option<Signal>) {
    if let Some(h) = hup {
        if h.recv().await.is_some() {
            return;
        }
    }
    std::future::pending().await
}

async fn refresh(store: &Arc<TokenStore>, file: &str, force: bool) {
    let before = store.len();
    let s = store.clone();
    // Off the async threads: a tokens file on a slow or hung mount must not stall serving.
    let result = match tokio::task::spawn_blocking(move || s.refresh(force)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, file, "tokens file reload panicked; the tokens loaded before stay in force");
            return;
        }
    };
    match result {
        Ok(Refresh::Unchanged) => {}
        Ok(Refresh::Reloaded { tokens: 0 }) => tracing::warn!(
            file,
            "tokens file reloaded: it holds no tokens, so every admin call is refused until one is added with `baton token create --tokens-file {file}`"
        ),
        Ok(Refresh::Reloaded { tokens }) => tracing::info!(
            file,
            tokens,
            before,
            signal = force,
            "tokens file reloaded: removed tokens are refused from now on"
        ),
        // The error names the file and the line (see `Error::TokensFile`).
        Err(e) => tracing::error!(
            error = %e,
            kept = before,
            "tokens file not reloaded: the tokens loaded before stay in force — fix the file; it is read again when it changes, or on SIGHUP"
        ),
    }
}
