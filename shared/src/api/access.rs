//! The routes, and who may call each: the one table the router is built from and
//! access is decided by.

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

/// Every path the API serves, once each, as the router takes them.
pub(super) fn paths() -> impl Iterator<Item = &'static str> {
    ROUTES
        .iter()
        .enumerate()
        .filter(|(index, route)| ROUTES[..*index].iter().all(|earlier| earlier.path != route.path))
        .map(|(_, route)| route.path)
}

/// A path no route serves.
pub(super) fn no_endpoint(path: &str) -> ApiError {
    SyncError::NotFound(format!("there is no endpoint {path}: see api/openapi.yaml for the routes")).into()
}

/// The route of `template` that takes `method`, if the query holds only the parameters
/// it reads. `path` is the path as it was asked, for the errors.
pub(super) fn resolve(
    template: &str,
    method: &str,
    path: &str,
    query: &[(String, String)],
) -> Result<&'static Route, ApiError> {
    let on_path = || ROUTES.iter().filter(|route| route.path == template);
    let Some(route) = on_path().find(|route| route.method.eq_ignore_ascii_case(method)) else {
        let allowed: Vec<&str> = on_path().map(|route| route.method).collect();
        return Err(ApiError::MethodNotAllowed(format!("{path} takes {}, not {method}", allowed.join(", "))));
    };
    if let Some((unknown, _)) = query.iter().find(|(name, _)| !route.query.contains(&name.as_str())) {
        let reason = match route.query {
            [] => "is not a parameter of this endpoint, which takes none".to_string(),
            known => format!("is not a parameter of this endpoint: it takes {}", known.join(", ")),
        };
        return Err(SyncError::invalid_field(unknown.clone(), reason).into());
    }
    Ok(route)
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
