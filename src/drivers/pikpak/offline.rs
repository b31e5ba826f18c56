//! Offline (cloud) downloads, pikpak-protocol.md §8.6: create with `POST /drive/v1/files`
//! (`upload_type: UPLOAD_TYPE_URL`), list with `GET /drive/v1/tasks`, delete with
//! `DELETE /drive/v1/tasks`.
//!
//! URLs are passed through unchanged (magnet, http(s), ed2k, ...): which schemes the server
//! accepts is unconfirmed (§15.7), so the server decides. Without a folder, `folder_type`
//! `DOWNLOAD` lets the server pick its default ("My Pack"), as rclone and PikPakAPI do.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;

use super::PikPak;
use super::api::{NewTask, Task, TaskList};
use crate::drivers::{Entry, OfflineTask, OfflineTasks};
use crate::error::{Error, Result};

const PHASES: &str = r#"{"phase":{"in":"PHASE_TYPE_RUNNING,PHASE_TYPE_ERROR,PHASE_TYPE_COMPLETE,PHASE_TYPE_PENDING"}}"#;
/// Bound on task-list pages.
const MAX_TASK_PAGES: usize = 100;

pub(super) fn task(t: Task) -> OfflineTask {
    let progress = match &t.progress {
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(0.0),
        serde_json::Value::String(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    };
    OfflineTask {
        name: if t.name.is_empty() { t.file_name } else { t.name },
        id: t.id,
        phase: t.phase,
        progress: progress.clamp(0.0, 100.0) as u32,
        size: t.file_size,
        message: t.message,
    }
}

#[async_trait]
impl OfflineTasks for PikPak {
    async fn add(&self, url: &str, folder: Option<&Entry>) -> Result<String> {
        let parent = folder.map(|f| f.id.as_str()).unwrap_or(self.root_id.as_str());
        let folder_type = if parent.is_empty() && folder.is_none() { "DOWNLOAD" } else { "" };
        let body = json!({
            "kind": "drive#file",
            "name": "",
            "upload_type": "UPLOAD_TYPE_URL",
            "url": { "url": url },
            "parent_id": parent,
            "folder_type": folder_type,
        });
        let v = self.call(Method::POST, "/drive/v1/files", &[], Some(&body)).await?;
        let created: NewTask = crate::drivers::decode("offline task", v)?;
        created
            .task
            .map(|t| t.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::InvalidResponse("the reply has no task id".into()))
    }

    async fn list(&self) -> Result<Vec<OfflineTask>> {
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_TASK_PAGES {
            let query = [
                ("type", "offline"),
                ("thumbnail_size", "SIZE_SMALL"),
                ("limit", "10000"),
                ("page_token", token.as_str()),
                ("filters", PHASES),
            ];
            let v = self.call(Method::GET, "/drive/v1/tasks", &query, None).await?;
            let page: TaskList = crate::drivers::decode("task list", v)?;
            let done = page.tasks.is_empty() || page.next_page_token.is_empty() || page.next_page_token == token;
            out.extend(page.tasks.into_iter().map(task));
            if done {
                break;
            }
            token = page.next_page_token;
        }
        Ok(out)
    }

    async fn remove(&self, ids: &[String]) -> Result<()> {
        let joined = ids.join(",");
        let query = [("task_ids", joined.as_str()), ("delete_files", "false")];
        self.call(Method::DELETE, "/drive/v1/tasks", &query, None).await.map(drop)
    }
}
