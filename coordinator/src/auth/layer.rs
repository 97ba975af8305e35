//! The tower layer in front of every gRPC service: it sees the method's
//! path, which tonic interceptors do not, and decides before any handler runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{authorize, Auth, TokenStore};

#[derive(Clone, Debug)]
pub struct AuthLayer {
    store: Option<Arc<TokenStore>>,
}

impl AuthLayer {
    pub fn new(auth: &Auth) -> Self {
        Self {
            store: match auth {
                Auth::Tokens(s) => Some(s.clone()),
                Auth::Off => None,
            },
        }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authenticate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            store: self.store.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Authenticate<S> {
    inner: S,
    store: Option<Arc<TokenStore>>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower_service::Service<http::Request<B>> for Authenticate<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if let Some(store) = &self.store {
            let path = req.uri().path().to_string();
            match authorize(store, &path, req.headers()) {
                Ok(who) => {
                    tracing::debug!(method = %path, caller = %who.name, role = %who.role, "admin call");
                    req.extensions_mut().insert(who);
                }
                Err(status) => {
                    // The status names the method and the caller, never the token.
                    tracing::warn!(method = %path, code = ?status.code(), reason = %status.message(), "admin call refused");
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        // The clone that was made ready is the one that must serve the call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(inner.call(req))
    }
}
