from celery import shared_task


@shared_task
def charge(customer_id: int, cents: int) -> dict:
    """Charge a customer."""
    return {"customer": customer_id, "charged": cents}
