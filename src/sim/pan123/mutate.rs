//! Folder and file management (pan123-protocol.md §2.6, §6 items 7 and 8): mkdir (an
//! `upload_request` with `type:1`, routed here by `upload`), `file/rename`, `file/mod_pid`,
//! `file/trash` (`operation:true` trashes, `false` restores) and `file/info`. Ids may come as
//! JSON numbers or numeric strings, keys in any case. There is no permanent delete.
//!
//! Guesses where the reference is silent (§7), as constants below: a taken name on rename or
//! move is code 5063 (a client trashes the target first), an invalid name or a move into the
//! item itself 5062, an unknown id 5066 (the known "file does not exist"), a disk failure 1.
//! mkdir answers `{FileId, Reuse, Info: <File>}`: the real answer's shape is unconfirmed,
//! it is what a client needs to learn the folder's id. Rename, move and trash answer
//! `data: null` (OL ignores `data`); `file/info` lists the live items it knows and skips the
//! others. The recycle bin is not listable (`trashed=true` listings show the live tree).

use serde_json::{Value, json};

use super::edit::Refusal;
use super::routes::{Fail, Reply, fail, field, int, ok, text};
use super::{Pan123Counters, Pan123Sim};

/// A rename or move onto a name the target folder holds (a guess).
pub const NAME_TAKEN: i64 = 5063;
/// An invalid name, or a folder moved into itself (a guess).
pub const INVALID: i64 = 5062;
/// "File does not exist" (known from P123).
pub const NOT_FOUND: i64 = 5066;

impl From<Refusal> for Fail {
    fn from(r: Refusal) -> Fail {
        match r {
            Refusal::NotFound => fail(NOT_FOUND, "文件不存在"),
            Refusal::NameTaken => fail(NAME_TAKEN, "当前目录有重名文件"),
            Refusal::Invalid(why) => fail(INVALID, why),
            Refusal::Disk(e) => fail(1, &format!("内部错误: {e}")),
        }
    }
}

/// A boolean sent as `true`, `1` or `"true"`.
pub(super) fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true") || s == "1",
        _ => false,
    }
}

/// The `FileId`s of a list of objects (`fileIdList`, `fileTrashInfoList`); bare ids count too.
fn ids(list: Option<&Value>) -> Result<Vec<i64>, Fail> {
    let items = list.and_then(Value::as_array).filter(|a| !a.is_empty()).ok_or_else(|| fail(1, "参数错误"))?;
    items.iter().map(|v| int(field(v, "FileId")).or_else(|| int(Some(v))).ok_or_else(|| fail(1, "参数错误"))).collect()
}

/// `upload_request` with `type:1`: reuse a same-name folder unless `NotReuse`; otherwise (and
/// whatever `duplicate` says) keep both, the new one as `name(1)`.
pub(super) fn mkdir(sim: &Pan123Sim, body: &Value) -> Reply {
    let parent = int(field(body, "parentFileId")).unwrap_or(0);
    let reuse = !flag(field(body, "NotReuse"));
    let (node, reused) = sim.tree.mkdir(parent, &text(field(body, "fileName")), reuse)?;
    if !reused {
        Pan123Counters::add(&sim.counters.mkdirs);
    }
    Ok(ok(json!({"FileId": node.id, "Reuse": reused, "Info": sim.tree.file_json(&node)})))
}

pub(super) fn rename(sim: &Pan123Sim, body: &Value) -> Reply {
    let id = int(field(body, "fileId")).ok_or_else(|| fail(1, "参数错误"))?;
    sim.tree.rename(id, &text(field(body, "fileName")))?;
    Pan123Counters::add(&sim.counters.renames);
    Ok(ok(Value::Null))
}

pub(super) fn move_items(sim: &Pan123Sim, body: &Value) -> Reply {
    let to = int(field(body, "parentFileId")).ok_or_else(|| fail(1, "参数错误"))?;
    let ids = ids(field(body, "fileIdList"))?;
    if ids.iter().any(|id| sim.tree.node(*id).is_none()) {
        return Err(Refusal::NotFound.into());
    }
    for id in ids {
        sim.tree.move_to(id, to)?;
        Pan123Counters::add(&sim.counters.moves);
    }
    Ok(ok(Value::Null))
}

pub(super) fn trash(sim: &Pan123Sim, body: &Value) -> Reply {
    let ids = ids(field(body, "fileTrashInfoList"))?;
    if flag(field(body, "operation")) {
        if ids.iter().any(|id| sim.tree.node(*id).is_none()) {
            return Err(Refusal::NotFound.into());
        }
        for id in ids {
            sim.tree.trash(id)?;
            Pan123Counters::add(&sim.counters.trashes);
        }
    } else {
        let trashed = sim.tree.trashed();
        if ids.iter().any(|id| !trashed.iter().any(|t| t.id == *id)) {
            return Err(Refusal::NotFound.into());
        }
        for id in ids {
            sim.tree.restore(id)?;
            Pan123Counters::add(&sim.counters.restores);
        }
    }
    Ok(ok(Value::Null))
}

pub(super) fn info(sim: &Pan123Sim, body: &Value) -> Reply {
    let list: Vec<Value> = ids(field(body, "fileIdList"))?
        .into_iter()
        .filter_map(|id| sim.tree.node(id).filter(|_| id != 0))
        .map(|n| sim.tree.file_json(&n))
        .collect();
    Ok(ok(json!({"infoList": list})))
}
