//! Repository for organisation units (`org_units`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::org_units;
use super::{AnyConnection, DbError, from_db_time, to_db_time};
use crate::domain::{OrgPath, OrgUnit, OrgUnitId};

#[derive(Queryable)]
struct OrgUnitRow {
    id: String,
    parent_id: Option<String>,
    path: String,
    name: String,
    kind: String,
    created_at: chrono::NaiveDateTime,
}

impl OrgUnitRow {
    fn into_domain(self) -> Result<OrgUnit, DbError> {
        Ok(OrgUnit {
            path: OrgPath::parse(&self.path).map_err(|e| DbError::Corrupt(e.0))?,
            id: OrgUnitId::from_string(self.id),
            parent_id: self.parent_id.map(OrgUnitId::from_string),
            name: self.name,
            kind: self.kind,
            created_at: from_db_time(self.created_at),
        })
    }
}

/// Creates a unit at `path`. Its parent (the path minus its last segment) must exist, except
/// for a root. A taken path is `DbError::Conflict`; a missing parent is `DbError::Conflict`
/// naming the parent's path.
pub fn create(
    conn: &mut AnyConnection,
    path: &OrgPath,
    name: &str,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<OrgUnit, DbError> {
    let parent_id = match path.parent() {
        None => None,
        Some(p) => Some(
            find_by_path(conn, &p)?
                .ok_or_else(|| DbError::Conflict(format!("parent org unit '{p}' does not exist")))?
                .id,
        ),
    };
    if find_by_path(conn, path)?.is_some() {
        return Err(DbError::Conflict(format!("org unit '{path}' already exists")));
    }
    let id = OrgUnitId::generate();
    diesel::insert_into(org_units::table)
        .values((
            org_units::id.eq(id.as_str()),
            org_units::parent_id.eq(parent_id.as_ref().map(OrgUnitId::as_str)),
            org_units::path.eq(path.as_str()),
            org_units::name.eq(name),
            org_units::kind.eq(kind),
            org_units::created_at.eq(to_db_time(now)),
        ))
        .execute(conn)?;
    find_by_path(conn, path)?.ok_or(DbError::NotFound)
}

/// The unit at `path`, if any.
pub fn find_by_path(conn: &mut AnyConnection, path: &OrgPath) -> Result<Option<OrgUnit>, DbError> {
    org_units::table
        .filter(org_units::path.eq(path.as_str()))
        .get_result::<OrgUnitRow>(conn)
        .optional()?
        .map(OrgUnitRow::into_domain)
        .transpose()
}

/// The unit with this id, if any.
pub fn find(conn: &mut AnyConnection, id: &OrgUnitId) -> Result<Option<OrgUnit>, DbError> {
    if !id.is_storable() {
        return Ok(None);
    }
    org_units::table
        .find(id.as_str())
        .get_result::<OrgUnitRow>(conn)
        .optional()?
        .map(OrgUnitRow::into_domain)
        .transpose()
}

/// Units ordered by path; with `under`, only that unit and its subtree.
pub fn list(conn: &mut AnyConnection, under: Option<&OrgPath>) -> Result<Vec<OrgUnit>, DbError> {
    let mut q = org_units::table.into_boxed();
    if let Some(p) = under {
        // Paths hold no LIKE wildcards (OrgPath's charset), so the prefix needs no escaping.
        q = q.filter(org_units::path.eq(p.as_str()).or(org_units::path.like(format!("{p}/%"))));
    }
    let rows: Vec<OrgUnitRow> = q.order(org_units::path.asc()).load(conn)?;
    rows.into_iter().map(OrgUnitRow::into_domain).collect()
}

/// Every unit's id by path; for bulk imports that resolve paths without a query per row.
pub fn ids_by_path(conn: &mut AnyConnection) -> Result<HashMap<String, OrgUnitId>, DbError> {
    let rows: Vec<(String, String)> = org_units::table.select((org_units::path, org_units::id)).load(conn)?;
    Ok(rows.into_iter().map(|(p, id)| (p, OrgUnitId::from_string(id))).collect())
}

/// The unit `id` and its ancestors, the unit first and the root last; empty when there is no
/// such unit. One query: the ancestors are the units whose paths are prefixes of its path.
pub fn chain(conn: &mut AnyConnection, id: &OrgUnitId) -> Result<Vec<OrgUnit>, DbError> {
    let Some(unit) = find(conn, id)? else { return Ok(Vec::new()) };
    let mut prefixes = Vec::new();
    let mut p = unit.path.parent();
    while let Some(parent) = p {
        p = parent.parent();
        prefixes.push(parent.as_str().to_owned());
    }
    let rows: Vec<OrgUnitRow> = if prefixes.is_empty() {
        Vec::new()
    } else {
        org_units::table.filter(org_units::path.eq_any(&prefixes)).load(conn)?
    };
    let mut out = vec![unit];
    for row in rows {
        out.push(row.into_domain()?);
    }
    // Deepest first: the unit, its parent, …, the root.
    out.sort_by_key(|u| std::cmp::Reverse(u.path.depth()));
    Ok(out)
}

/// The paths of the units `ids`, by id (unknown ids are left out).
pub fn paths_of(conn: &mut AnyConnection, ids: &[OrgUnitId]) -> Result<HashMap<OrgUnitId, String>, DbError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(OrgUnitId::as_str).collect();
        let rows: Vec<(String, String)> = org_units::table
            .filter(org_units::id.eq_any(keys))
            .select((org_units::id, org_units::path))
            .load(conn)?;
        out.extend(rows.into_iter().map(|(id, p)| (OrgUnitId::from_string(id), p)));
    }
    Ok(out)
}

/// The units without a parent: the roots of the organisation's trees.
pub fn roots(conn: &mut AnyConnection) -> Result<Vec<OrgUnit>, DbError> {
    let rows: Vec<OrgUnitRow> =
        org_units::table.filter(org_units::parent_id.is_null()).order(org_units::path.asc()).load(conn)?;
    rows.into_iter().map(OrgUnitRow::into_domain).collect()
}
