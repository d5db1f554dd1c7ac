//! The routes, and who may call each: the one table access is decided by.

use super::Identity;
use super::response::ApiError;
use crate::auth::{Caller, Role};
use crate::errors::SyncError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    CreateConnector,
    ListConnectors,
    GetConnector,
    UpdateConnector,
    DeleteConnector,
    StartSync,
    ListSyncs,
    GetJob,
    GetJobStatus,
    CancelJob,
}

#[derive(Debug)]
pub(super) struct Route {
    method: &'static str,
    /// Segments in braces are parameters: `/jobs/{job_id}`.
    path: &'static str,
    pub(super) endpoint: Endpoint,
    /// The roles that may call it.
    roles: &'static [Role],
    /// The query parameters it reads; any other is refused, so a misspelt filter
    /// does not silently list everything.
    query: &'static [&'static str],
}

/// Starting and cancelling syncs and changing connectors.
const ADMIN: &[Role] = &[Role::Admin];
/// Reading connectors, jobs and history.
const READERS: &[Role] = &[Role::Admin, Role::Reader];

const HISTORY_QUERY: &[&str] =
    &["activity", "status", "stage", "trigger", "from", "to", "level", "limit", "next_token"];

/// Every endpoint, the roles that may call it, and the query parameters it reads.
#[rustfmt::skip]
const ROUTES: [Route; 10] = [
    route("POST",   "/connectors",                      Endpoint::CreateConnector, ADMIN,   &[]),
    route("GET",    "/connectors",                      Endpoint::ListConnectors,  READERS, &[]),
    route("GET",    "/connectors/{connector_id}",       Endpoint::GetConnector,    READERS, &[]),
    route("PATCH",  "/connectors/{connector_id}",       Endpoint::UpdateConnector, ADMIN,   &[]),
    route("DELETE", "/connectors/{connector_id}",       Endpoint::DeleteConnector, ADMIN,   &[]),
    route("POST",   "/connectors/{connector_id}/syncs", Endpoint::StartSync,       ADMIN,   &[]),
    route("GET",    "/connectors/{connector_id}/syncs", Endpoint::ListSyncs,       READERS, HISTORY_QUERY),
    route("GET",    "/jobs/{job_id}",                   Endpoint::GetJob,          READERS, &["level"]),
    route("GET",    "/jobs/{job_id}/status",            Endpoint::GetJobStatus,    READERS, &[]),
    route("POST",   "/jobs/{job_id}/cancel",            Endpoint::CancelJob,       ADMIN,   &[]),
];

const fn route(
    method: &'static str,
    path: &'static str,
    endpoint: Endpoint,
    roles: &'static [Role],
    query: &'static [&'static str],
) -> Route {
    Route { method, path, endpoint, roles, query }
}

/// A route and the parameters its path filled in.
pub(super) struct Matched {
    pub(super) route: &'static Route,
    params: Vec<(&'static str, String)>,
}

impl Matched {
    pub(super) fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(param, _)| *param == name).map_or("", |(_, value)| value.as_str())
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|segment| !segment.is_empty())
}

fn matches_path(template: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let (template, path): (Vec<&'static str>, Vec<&str>) = (segments(template).collect(), segments(path).collect());
    if template.len() != path.len() {
        return None;
    }
    let mut params = Vec::new();
    for (expected, given) in template.into_iter().zip(path) {
        match expected.strip_prefix('{').and_then(|name| name.strip_suffix('}')) {
            Some(name) => params.push((name, given.to_string())),
            None if expected == given => {}
            None => return None,
        }
    }
    Some(params)
}

pub(super) fn resolve(method: &str, path: &str, query: &[(String, String)]) -> Result<Matched, ApiError> {
    let on_path: Vec<(&'static Route, Vec<(&'static str, String)>)> =
        ROUTES.iter().filter_map(|route| matches_path(route.path, path).map(|params| (route, params))).collect();
    if on_path.is_empty() {
        return Err(
            SyncError::NotFound(format!("there is no endpoint {path}: see api/openapi.yaml for the routes")).into()
        );
    }
    let Some((route, params)) = on_path.iter().find(|(route, _)| route.method.eq_ignore_ascii_case(method)).cloned()
    else {
        let allowed: Vec<&str> = on_path.iter().map(|(route, _)| route.method).collect();
        return Err(ApiError::MethodNotAllowed(format!("{path} takes {}, not {method}", allowed.join(", "))));
    };
    if let Some((unknown, _)) = query.iter().find(|(name, _)| !route.query.contains(&name.as_str())) {
        let reason = match route.query {
            [] => "is not a parameter of this endpoint, which takes none".to_string(),
            known => format!("is not a parameter of this endpoint: it takes {}", known.join(", ")),
        };
        return Err(SyncError::invalid_field(unknown.clone(), reason).into());
    }
    Ok(Matched { route, params })
}

/// The caller, if their role may call the route.
pub(super) fn authorize(route: &Route, identity: &Identity) -> Result<Caller, ApiError> {
    let role = Role::parse(&identity.role).filter(|role| route.roles.contains(role));
    match role {
        Some(role) => Ok(Caller { principal: identity.principal.clone(), role }),
        None => {
            let allowed: Vec<&str> = route.roles.iter().map(|role| role.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "{} has the role {:?}; {} {} needs the role {}: ask an administrator for it",
                identity.principal,
                identity.role,
                route.method,
                route.path,
                allowed.join(" or ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_describes_every_route_and_no_other() {
        let document = include_str!("../../../api/openapi.yaml");
        let mut described = Vec::new();
        let mut path = "";
        for line in document.lines() {
            if let Some(key) = line.strip_prefix("  /").and_then(|rest| rest.strip_suffix(':')) {
                path = key;
            } else if let Some(method) = ["get", "post", "patch", "delete"].iter().find(|m| line == format!("    {m}:"))
            {
                described.push(format!("{} /{path}", method.to_uppercase()));
            }
        }
        let mut routed: Vec<String> = ROUTES.iter().map(|route| format!("{} {}", route.method, route.path)).collect();
        described.sort();
        routed.sort();
        assert_eq!(described, routed, "api/openapi.yaml and the route table differ");
    }
}
