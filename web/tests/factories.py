import factory

from web.models import User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    role = User.Role.TALKER
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery-staple")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TalkerFactory(UserFactory):
    role = User.Role.TALKER
    username = factory.Sequence(lambda n: f"talker{n}")


class ListenerFactory(UserFactory):
    role = User.Role.LISTENER
    username = factory.Sequence(lambda n: f"listener{n}")
