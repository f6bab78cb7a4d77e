from celery import shared_task


@shared_task
def send_welcome(email: str) -> str:
    return f"sent to {email}"
