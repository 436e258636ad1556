"""The attempt policy and the outcomes, without anything else."""

from __future__ import annotations

import pytest

from notification_service.domain.model import AttemptPolicy, Park, RetryLater
from notification_service.service_layer.handlers import MAX_ATTEMPTS, POLICY

POLICY_OF_THREE_RETRIES = AttemptPolicy((1, 5, 25))


def test_there_is_one_attempt_more_than_retry_delays() -> None:
    assert POLICY_OF_THREE_RETRIES.max_attempts == 4
    assert AttemptPolicy(()).max_attempts == 1


def test_the_service_allows_an_attempt_per_retry_queue_and_the_first() -> None:
    assert (POLICY, MAX_ATTEMPTS) == (POLICY_OF_THREE_RETRIES, 4)


@pytest.mark.parametrize(("attempt", "allowed"), [(0, False), (1, True), (4, True), (5, False)])
def test_only_attempts_1_to_max_are_allowed(attempt: int, allowed: bool) -> None:
    assert POLICY_OF_THREE_RETRIES.allows(attempt) is allowed


def test_a_temporary_failure_is_retried_at_the_next_attempt() -> None:
    assert POLICY_OF_THREE_RETRIES.after_temporary_failure(1, "421") == RetryLater(2, "421")
    assert POLICY_OF_THREE_RETRIES.after_temporary_failure(3, "421") == RetryLater(4, "421")


def test_a_temporary_failure_at_the_last_attempt_is_parked() -> None:
    assert POLICY_OF_THREE_RETRIES.after_temporary_failure(4, "421") == Park(
        "still failing after 4 attempts: 421"
    )


def test_a_permanent_failure_is_parked_at_once() -> None:
    assert POLICY_OF_THREE_RETRIES.after_permanent_failure("550 no") == Park(
        "permanent SMTP failure: 550 no"
    )
