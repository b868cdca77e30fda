//! Per-client budgets at the edge: each unauthenticated route that does work
//! draws on its route group's token bucket for the client's address.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use super::extract::Client;
use super::state::AppState;
use crate::auth::{ClientContext, RouteGroup};

/// A route group, as a type, for [`Throttled`].
pub trait Group {
    const GROUP: RouteGroup;
}

pub struct Register;
impl Group for Register {
    const GROUP: RouteGroup = RouteGroup::Register;
}

pub struct Login;
impl Group for Login {
    const GROUP: RouteGroup = RouteGroup::Login;
}

pub struct Other;
impl Group for Other {
    const GROUP: RouteGroup = RouteGroup::Other;
}

/// Admits the request against its group's budget, or rejects it with 429.
pub struct Throttled<G: Group>(PhantomData<G>);

impl<G: Group> FromRequestParts<AppState> for Throttled<G> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
        admit(state, G::GROUP, &client).await?;
        Ok(Self(PhantomData))
    }
}

/// Draws on the client's budget for `group`.
pub async fn admit(
    state: &AppState,
    group: RouteGroup,
    client: &ClientContext,
) -> Result<(), ApiError> {
    let admitted = state.auth.admit(group, client.ip).await;
    if admitted.is_err() && group == RouteGroup::Login {
        state
            .auth
            .metrics()
            .login(crate::metrics::LoginOutcome::Throttled);
    }
    admitted.map_err(ApiError::Throttled)
}
