//! The admin gRPC service. Any coordinator answers about any run: reads come
//! from the run store, and decisions travel as events to whoever folds the run.

use std::pin::Pin;

use baton_proto::kinds::EventKind;
use baton_proto::v1::{self, admin_server::Admin, event::Body};
use baton_proto::{bus, codec, subjects};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::auth::{caller, Identity};
use crate::follow::{self, Feed, Next};
use crate::run::view;
use crate::state_store::RunStore;
use crate::submit::{Submission, Submitter};
use crate::Error;

#[derive(Clone)]
pub struct AdminService {
    pub submitter: Submitter,
    pub store: RunStore,
    pub events: async_nats::jetstream::stream::Stream,
    pub workers: crate::workers::WorkerDirectory,
    pub evidence: async_nats::jetstream::object_store::ObjectStore,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::RunEvent, Status>> + Send>>;

impl AdminService {
    /// `who` comes from the caller's credentials; a `by` in the request body is ignored.
    async fn decide(
        &self,
        who: Identity,
        req: v1::DecisionRequest,
        approve: bool,
    ) -> Result<(), Error> {
        let d = crate::approvals::DecisionInput {
            run_id: req.run_id,
            by: who.name,
            approve,
            reason: req.reason,
            task_id: req.task_id,
        };
        crate::approvals::decide(&self.submitter.js, &self.store, d).await
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn submit_run(
        &self,
        req: Request<v1::SubmitRunRequest>,
    ) -> Result<Response<v1::SubmitRunResponse>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        let run_id = self
            .submitter
            .submit(Submission {
                plan_yaml: r.plan_yaml,
                plan_file: r.plan_file,
                plan_name: r.plan_name,
                inputs: r.inputs.into_iter().collect(),
                submitted_by: who.name,
                trigger: "grpc".into(),
            })
            .await?;
        Ok(Response::new(v1::SubmitRunResponse { run_id }))
    }

    async fn get_run(&self, req: Request<v1::GetRunRequest>) -> Result<Response<v1::Run>, Status> {
        let st = self.store.get(&req.into_inner().run_id).await?;
        let mut run = view::to_proto(&st);
        if !st.status.is_terminal() {
            if let Some(live) = self.workers.live_roles().await {
                view::add_unserved(&mut run.waiting, &view::unserved_roles(&st, &live));
            }
        }
        Ok(Response::new(run))
    }

    async fn list_runs(
        &self,
        req: Request<v1::ListRunsRequest>,
    ) -> Result<Response<v1::ListRunsResponse>, Status> {
        let limit = match req.into_inner().limit {
            0 => 50,
            n => n.min(1000) as usize,
        };
        let runs = self.store.list(limit).await?;
        Ok(Response::new(v1::ListRunsResponse {
            runs: runs.iter().map(|r| view::summary(r)).collect(),
        }))
    }

    type WatchRunStream = EventStream;

    async fn watch_run(
        &self,
        req: Request<v1::WatchRunRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let run_id = req.into_inner().run_id;
        if !crate::state_store::valid_id(&run_id) {
            return Err(Error::RunNotFound(run_id).into());
        }
        // The submission is the run's first event: if it is absent, so is the run.
        let exists = self
            .events
            .get_last_raw_message_by_subject(&EventKind::RunSubmitted.subject(&run_id))
            .await
            .is_ok();
        if !exists {
            return Err(Error::RunNotFound(run_id).into());
        }
        let mut feed = Feed::open(
            &self.submitter.js,
            &self.events,
            subjects::run_events(&run_id),
            "watch",
        )
        .await?;
        // Ends right after the run's end is sent, not when a later event
        // arrives; and at once when the client leaves.
        let stream = follow::spawn(move |tx| async move {
            let why = loop {
                match feed.next(&tx, None).await {
                    Next::Message(m) => {
                        let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                        // Watchers see what the fold acts on: nothing under a
                        // subject its body does not match.
                        let Ok(event) = codec::decode_event(&m.subject, &m.payload) else {
                            continue;
                        };
                        let end = matches!(event.body, Some(Body::RunFinished(_)));
                        let sent = tx.send(Ok(v1::RunEvent {
                            seq,
                            event: Some(event),
                        }));
                        if sent.await.is_err() {
                            break follow::CLIENT_LEFT;
                        }
                        if end {
                            break "run ended";
                        }
                    }
                    Next::Error(e) => {
                        let _ = tx.send(Err(Status::unavailable(e.to_string()))).await;
                        break "consumer failed";
                    }
                    Next::Ended => break "consumer ended",
                    Next::ClientLeft => break follow::CLIENT_LEFT,
                    Next::Idle => {}
                }
            };
            // The client sees the end now, not after the consumer's deletion.
            drop(tx);
            feed.close(why).await;
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn approve(
        &self,
        req: Request<v1::DecisionRequest>,
    ) -> Result<Response<v1::DecisionResponse>, Status> {
        self.decide(caller(&req), req.into_inner(), true).await?;
        Ok(Response::new(v1::DecisionResponse {}))
    }

    async fn reject(
        &self,
        req: Request<v1::DecisionRequest>,
    ) -> Result<Response<v1::DecisionResponse>, Status> {
        self.decide(caller(&req), req.into_inner(), false).await?;
        Ok(Response::new(v1::DecisionResponse {}))
    }

    async fn cancel_run(
        &self,
        req: Request<v1::CancelRunRequest>,
    ) -> Result<Response<v1::CancelRunResponse>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        let st = self.store.get(&r.run_id).await.map_err(Status::from)?;
        if st.status.is_terminal() {
            return Err(Error::RunEnded {
                run: st.run_id.clone(),
                status: st.status.as_str().into(),
            }
            .into());
        }
        let body = Body::CancelRequested(v1::CancelRequested {
            by: who.name,
            reason: r.reason,
        });
        let id = baton_proto::subjects::msg_id::cancel(&st.run_id);
        bus::publish_event(&self.submitter.js, &st.run_id, &id, body, &st.traceparent)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(v1::CancelRunResponse {}))
    }

    async fn list_workers(
        &self,
        _req: Request<v1::ListWorkersRequest>,
    ) -> Result<Response<v1::ListWorkersResponse>, Status> {
        Ok(Response::new(v1::ListWorkersResponse {
            workers: self.workers.list().await?,
        }))
    }

    async fn apply_roles(
        &self,
        req: Request<v1::ApplyRolesRequest>,
    ) -> Result<Response<v1::ApplyRolesResponse>, Status> {
        let r = req.into_inner();
        let file = if r.file.is_empty() {
            "roles.yaml"
        } else {
            &r.file
        };
        let results = self.submitter.roles.apply(&r.roles_yaml, file).await?;
        Ok(Response::new(v1::ApplyRolesResponse { results }))
    }

    async fn list_roles(
        &self,
        _req: Request<v1::ListRolesRequest>,
    ) -> Result<Response<v1::ListRolesResponse>, Status> {
        let roles = self.submitter.roles.list().await?;
        Ok(Response::new(v1::ListRolesResponse {
            roles: roles
                .into_iter()
                .map(|(id, yaml)| v1::RoleSpecYaml { id, yaml })
                .collect(),
        }))
    }

    /// The run's stored envelope, byte for byte as signed (least role: viewer).
    async fn get_evidence(
        &self,
        req: Request<v1::GetEvidenceRequest>,
    ) -> Result<Response<v1::GetEvidenceResponse>, Status> {
        let run = req.into_inner().run_id;
        let envelope = crate::evidence::collect::fetch(&self.evidence, &run).await?;
        Ok(Response::new(v1::GetEvidenceResponse { envelope }))
    }

    type LogsStream = LogStream;

    async fn logs(&self, req: Request<v1::LogsRequest>) -> Result<Response<LogStream>, Status> {
        Ok(Response::new(self.logs_stream(req.into_inner()).await?))
    }

    async fn apply_plan(
        &self,
        req: Request<v1::ApplyPlanRequest>,
    ) -> Result<Response<v1::ApplyPlanResponse>, Status> {
        let r = req.into_inner();
        let file = if r.plan_file.is_empty() {
            "plan.yaml"
        } else {
            &r.plan_file
        };
        let plan = self.submitter.apply(&r.plan_yaml, file).await?;
        Ok(Response::new(v1::ApplyPlanResponse {
            name: plan.name.clone(),
            summary: baton_plan::summary(&plan),
        }))
    }
}

pub(crate) type LogStream = Pin<Box<dyn Stream<Item = Result<v1::LogEntry, Status>> + Send>>;

impl AdminService {
    pub(crate) async fn logs_stream(&self, r: v1::LogsRequest) -> Result<LogStream, Status> {
        let st = self.store.get(&r.run_id).await?;
        if !r.task_id.is_empty() && !st.tasks.contains_key(&r.task_id) {
            let known: Vec<&str> = st.task_order.iter().map(|s| s.as_str()).collect();
            return Err(Status::not_found(format!(
                "run {} has no task `{}` — its tasks: {}",
                st.run_id,
                r.task_id,
                known.join(", ")
            )));
        }
        let filter = if r.task_id.is_empty() {
            subjects::run_logs(&st.run_id)
        } else {
            subjects::log(&st.run_id, &r.task_id)
        };
        let logs = self
            .submitter
            .js
            .get_stream(subjects::LOGS_STREAM)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut feed = Feed::open(&self.submitter.js, &logs, filter, "logs").await?;
        let store = self.store.clone();
        let run_id = st.run_id.clone();
        let following = r.follow;
        let stream = follow::spawn(move |tx| async move {
            let why = loop {
                // Idle for a moment: without follow we are caught up; with it,
                // stop once the run has ended and nothing more arrives.
                match feed.next(&tx, Some(LOGS_IDLE)).await {
                    Next::Message(m) => {
                        let task_id = m.subject.rsplit('.').next().unwrap_or_default().to_string();
                        let h = m.headers.as_ref();
                        let get = |k: &str| {
                            h.and_then(|h| h.get(k))
                                .map(|v| v.as_str().to_string())
                                .unwrap_or_default()
                        };
                        let time_ms = m
                            .info()
                            .map(|i| (i.published.unix_timestamp_nanos() / 1_000_000) as i64)
                            .unwrap_or(0);
                        let entry = v1::LogEntry {
                            task_id,
                            attempt: get("Baton-Attempt").parse().unwrap_or(0),
                            stream: get("Baton-Stream"),
                            line: String::from_utf8_lossy(&m.payload).into_owned(),
                            time_ms,
                        };
                        if tx.send(Ok(entry)).await.is_err() {
                            break follow::CLIENT_LEFT;
                        }
                    }
                    Next::Error(_) => continue,
                    Next::Ended => break "consumer ended",
                    Next::ClientLeft => break follow::CLIENT_LEFT,
                    Next::Idle => {
                        if !following {
                            break "caught up";
                        }
                        match store.get(&run_id).await {
                            Ok(st) if st.status.is_terminal() => break "run ended",
                            _ => {}
                        }
                    }
                }
            };
            drop(tx);
            feed.close(why).await;
        });
        Ok(Box::pin(stream))
    }
}

/// How long `Logs` waits for a line before it takes itself for caught up
/// (or, following, looks whether the run has ended).
const LOGS_IDLE: std::time::Duration = std::time::Duration::from_millis(500);
