//! The error answers more than one operation gives (an instance in the wrong state, an
//! unknown region, database or account), and how a real server's failure is answered.

use crate::api::ApiError;
use crate::dbserver::ServerError;

/// A server failure: unreachable is the real `Database.ConnectError`; a refusal is an
/// internal error of the fake (logged, since the caller sees only the generic answer).
pub(super) fn server_error(err: ServerError) -> ApiError {
    match err {
        ServerError::Unreachable(_) => {
            log::warn!("fake RDS: {err}");
            ApiError::new(
                400,
                "Database.ConnectError",
                "Database connect error. please check instance status and database processlist",
            )
        }
        ServerError::Refused(_) => {
            log::error!("fake RDS: {err}");
            ApiError::internal()
        }
    }
}

pub(super) fn incorrect_state(status: u16) -> ApiError {
    ApiError::new(
        status,
        "IncorrectDBInstanceState",
        "Current DB instance state does not support this operation.",
    )
}

pub(super) fn region_not_found() -> ApiError {
    ApiError::new(
        404,
        "InvalidRegionId.NotFound",
        "The RegionId provided does not exist in our records.",
    )
}

pub(super) fn db_not_found() -> ApiError {
    ApiError::new(
        400,
        "InvalidDBName.NotFound",
        "Specified DB name does not exist.",
    )
}

pub(super) fn account_not_found() -> ApiError {
    ApiError::new(
        400,
        "InvalidAccountName.NotFound",
        "Specified account name does not exist.",
    )
}
