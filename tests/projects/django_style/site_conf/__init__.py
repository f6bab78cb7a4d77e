from site_conf.celery import app

__all__ = ["app"]
