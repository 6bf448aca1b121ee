//! The error answers more than one action gives: an unknown user, and a parameter beyond
//! its length limit.

use crate::api::ApiError;

pub(super) fn user_not_found() -> ApiError {
    ApiError::new(404, "EntityNotExist.User", "The user does not exist.")
}

pub(super) fn length_error(parameter: &str) -> ApiError {
    ApiError::new(
        400,
        &format!("InvalidParameter.{parameter}.Length"),
        format!("The parameter - \"{parameter}\" beyond the length limit."),
    )
}
