"""What notification-service announces on the activity feed
(service_layer/notices.py) through its real door: a mail sent after its
commit, a mail parked once it is in the parking lot; the order a mail is
about, recorded with its delivery; and GET /deliveries, the live page's state
(entrypoints/http.py)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from catalogue.contracts.activity import ActivityKind
from catalogue.contracts.notifications import NotificationKind
from notification_service.adapters.mailer import PermanentDeliveryError, TemporaryDeliveryError
from notification_service.entrypoints.http import read_routes
from tests.unit.notification.builders import RECIPIENT, mail
from tests.unit.notification.fakes import FakeDatabase
from tests.unit.notification.harness import Notification

ORDER = uuid.uuid4()


async def test_a_mail_about_an_order_is_recorded_with_it_and_announced(
    notification: Notification,
) -> None:
    message_id = await notification.send(mail(NotificationKind.ORDER), about=str(ORDER))
    assert notification.db.deliveries[message_id].order_id == ORDER
    [notice] = notification.db.announced
    assert (notice.kind, notice.source, notice.order_id, notice.detail) == (
        ActivityKind.MAIL_SENT,
        "notification-service",
        ORDER,
        {"mail": "order", "attempts": 1},
    )


async def test_a_points_mail_is_about_its_order_too(notification: Notification) -> None:
    message_id = await notification.send(mail(NotificationKind.POINTS), about=str(ORDER))
    assert notification.db.deliveries[message_id].order_id == ORDER


@pytest.mark.parametrize(
    ("kind", "about"),
    [(NotificationKind.MARKETING, str(ORDER)), (NotificationKind.ORDER, "c-1")],
    ids=["not-an-order-mail", "subject-not-a-uuid"],
)
async def test_other_mails_are_about_no_order(
    notification: Notification, kind: NotificationKind, about: str
) -> None:
    message_id = await notification.send(mail(kind), about=about)
    assert notification.db.deliveries[message_id].order_id is None
    [notice] = notification.db.announced
    assert notice.order_id is None


async def test_a_mail_to_retry_is_not_announced(notification: Notification) -> None:
    notification.mailer.refusals.append(TemporaryDeliveryError("421 try later"))
    await notification.send(mail(), about=str(ORDER))
    assert len(notification.retried) == 1
    assert (notification.db.announced, notification.activity.published) == ([], [])


async def test_a_mail_given_up_on_is_announced_as_parked_with_the_reason(
    notification: Notification,
) -> None:
    notification.mailer.refusals.append(PermanentDeliveryError("550 no such user"))
    await notification.send(mail(NotificationKind.POINTS), about=str(ORDER))
    assert len(notification.parked) == 1
    [notice] = notification.activity.published
    assert (notice.kind, notice.order_id, notice.detail["mail"]) == (
        ActivityKind.MAIL_PARKED,
        ORDER,
        "points",
    )
    assert "550 no such user" in str(notice.detail["reason"])
    assert notification.db.announced == []


async def test_a_malformed_command_is_announced_as_parked(notification: Notification) -> None:
    await notification.send(mail(), about=str(ORDER), body=b"\x00 not json")
    [notice] = notification.activity.published
    assert (notice.kind, notice.order_id) == (ActivityKind.MAIL_PARKED, None)
    assert "mail" not in notice.detail
    assert notice.detail["reason"]


# -- GET /deliveries ------------------------------------------------------------------
@pytest.fixture
def deliveries_api(db: FakeDatabase) -> httpx.AsyncClient:
    [(path, app)] = read_routes(db.unit_of_work)
    assert path == "/deliveries"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mail")


async def test_the_mails_about_the_orders_asked_for(
    notification: Notification, deliveries_api: httpx.AsyncClient
) -> None:
    other = uuid.uuid4()
    await notification.send(mail(NotificationKind.ORDER, "Your order"), about=str(ORDER))
    await notification.send(mail(NotificationKind.POINTS, "Your points"), about=str(ORDER))
    await notification.send(mail(NotificationKind.ORDER), about=str(other))
    response = await deliveries_api.get("/deliveries", params={"order_id": str(ORDER)})
    assert response.status_code == 200, response.text
    got = [
        (x["order_id"], x["kind"], x["recipient"], x["subject"], x["attempts"])
        for x in response.json()
    ]
    assert got == [
        (str(ORDER), "order", RECIPIENT, "Your order", 1),
        (str(ORDER), "points", RECIPIENT, "Your points", 1),
    ]
    assert all(x["delivered_at"] for x in response.json())


async def test_a_bad_order_id_is_a_422(deliveries_api: httpx.AsyncClient) -> None:
    response = await deliveries_api.get("/deliveries", params={"order_id": "42"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "order_id"
