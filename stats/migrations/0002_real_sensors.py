"""Real sensors: the model and override of a device, where a reading came from, probe faults,
uplinks kept for later, unclaimed devices; battery in volts or percent, never one column for both.

The old `battery` column held whatever number a decoder sent under a battery key. Values up to 5
go to volts (a LoRaWAN sensor's cell is 2 to 4.2 V, and the simulator and demo data sent 3.6 V),
larger ones to percent: the only reading of legacy rows that keeps each value where it belongs.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import F

VOLTS_AT_MOST = 5.0


def split_battery(apps, schema_editor):
    for name in ("Device", "TemperatureReading"):
        model = apps.get_model("stats", name)
        model.objects.filter(battery__lte=VOLTS_AT_MOST).update(battery_volts=F("battery"))
        model.objects.filter(battery__gt=VOLTS_AT_MOST).update(battery_percent=F("battery"))


class Migration(migrations.Migration):

    dependencies = [
        ('stats', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='device',
            name='battery_percent',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='device',
            name='battery_volts',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='device',
            name='brand_id',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name='device',
            name='last_payload',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='device',
            name='last_source',
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name='device',
            name='model_id',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name='device',
            name='probe_fault',
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name='device',
            name='probe_fault_since',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='device',
            name='temperature_path',
            field=models.CharField(blank=True, help_text='e.g. temperature_chn2, or messages[?measurementId=4097].measurementValue', max_length=200),
        ),
        migrations.AddField(
            model_name='device',
            name='temperature_unit',
            field=models.CharField(blank=True, choices=[('C', '°C'), ('F', '°F'), ('K', 'K')], max_length=1),
        ),
        migrations.AddField(
            model_name='temperaturereading',
            name='battery_percent',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='temperaturereading',
            name='battery_volts',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='unit',
            name='latest_reading_id',
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='temperaturereading',
            name='source',
            field=models.CharField(blank=True, db_default='', max_length=100),
        ),
        migrations.RunPython(split_battery, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='device',
            name='battery',
        ),
        migrations.RemoveField(
            model_name='temperaturereading',
            name='battery',
        ),
        migrations.CreateModel(
            name='KeptUplink',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('dev_eui', models.CharField(db_index=True, max_length=16)),
                ('outcome', models.CharField(choices=[('unmapped', 'Unmapped'), ('unclaimed', 'Unclaimed'), ('unassigned', 'Unassigned')], max_length=16)),
                ('reason', models.CharField(max_length=300)),
                ('brand_id', models.CharField(blank=True, max_length=64)),
                ('model_id', models.CharField(blank=True, max_length=64)),
                ('received_at', models.DateTimeField()),
                ('body', models.JSONField()),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='kept_uplinks', to='stats.organization')),
            ],
            options={
                'ordering': ['received_at', 'id'],
                'indexes': [models.Index(fields=['organization', 'received_at'], name='stats_keptu_organiz_cd0054_idx')],
            },
        ),
        migrations.CreateModel(
            name='UnclaimedDevice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('dev_eui', models.CharField(max_length=16)),
                ('brand_id', models.CharField(blank=True, max_length=64)),
                ('model_id', models.CharField(blank=True, max_length=64)),
                ('first_seen_at', models.DateTimeField()),
                ('last_seen_at', models.DateTimeField()),
                ('uplinks', models.PositiveIntegerField(default=0)),
                ('last_payload', models.JSONField(blank=True, null=True)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='unclaimed_devices', to='stats.organization')),
            ],
            options={
                'ordering': ['-last_seen_at'],
                'constraints': [models.UniqueConstraint(fields=('organization', 'dev_eui'), name='uniq_unclaimed_device')],
            },
        ),
    ]
