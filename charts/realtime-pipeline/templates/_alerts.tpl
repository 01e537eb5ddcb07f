{{/*
The alerts, one source for the PrometheusRule and for `promtool test rules` (the chart tests render
this template and feed it to promtool). Runbook entries: docs/operations.md.
*/}}
{{- define "rp.alertGroups" -}}
{{- $a := .Values.alerts -}}
{{- $runbook := "https://github.com/realtime-pipeline/realtime-pipeline/blob/main/docs/operations.md" -}}
groups:
  - name: realtime-pipeline
    rules:
      - alert: RealtimeFanoutLagHigh
        expr: max by (group) (realtime_consumer_lag_seconds{topic=~".+\\.ingress"}) > {{ $a.fanoutLagSeconds }}
        for: 5m
        labels: {severity: critical}
        annotations:
          summary: "The fanout group {{`{{ $labels.group }}`}} is {{`{{ $value | humanizeDuration }}`}} behind on the ingress topic."
          runbook_url: "{{ $runbook }}#realtimefanoutlaghigh"
      - alert: RealtimeNodeLagHigh
        expr: max by (group) (realtime_consumer_lag_seconds{topic=~".+\\.node\\..+"}) > {{ $a.nodeLagSeconds }}
        for: 5m
        labels: {severity: critical}
        annotations:
          summary: "Gateway {{`{{ $labels.group }}`}} is {{`{{ $value | humanizeDuration }}`}} behind on its delivery topic."
          runbook_url: "{{ $runbook }}#realtimenodelaghigh"
      - alert: RealtimeDeliveryLatencyHigh
        expr: histogram_quantile(0.99, sum by (le) (rate(realtime_delivery_latency_seconds_bucket{hop="end_to_end"}[5m]))) > {{ $a.p99LatencySeconds }}
        for: 5m
        labels: {severity: warning}
        annotations:
          summary: "p99 end-to-end delivery latency is {{`{{ $value | humanizeDuration }}`}}."
          runbook_url: "{{ $runbook }}#realtimedeliverylatencyhigh"
      - alert: RealtimeReconnectStorm
        expr: |
          sum(rate(realtime_gateway_connects_total[5m])) > {{ $a.reconnectFactor }} * sum(rate(realtime_gateway_connects_total[1h] offset 5m))
          and sum(rate(realtime_gateway_connects_total[5m])) > {{ $a.reconnectMinRate }}
        for: 5m
        labels: {severity: warning}
        annotations:
          summary: "Clients connect {{`{{ $value | humanize }}`}}/s, more than {{ $a.reconnectFactor }}x the last hour's rate."
          runbook_url: "{{ $runbook }}#realtimereconnectstorm"
      - alert: RealtimeReplaySurge
        expr: |
          sum(rate(realtime_gateway_replay_requests_total[10m])) > {{ $a.replayFactor }} * sum(rate(realtime_gateway_replay_requests_total[1h] offset 10m))
          and sum(rate(realtime_gateway_replay_requests_total[10m])) > {{ $a.replayMinRate }}
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: "Replays run at {{`{{ $value | humanize }}`}}/s, more than {{ $a.replayFactor }}x the last hour's rate."
          runbook_url: "{{ $runbook }}#realtimereplaysurge"
      - alert: RealtimeAuthFailureBurst
        expr: sum(rate(realtime_gateway_handshake_failures_total{cause="unauthorized"}[5m])) > {{ $a.authFailuresPerSecond }}
        for: 5m
        labels: {severity: warning}
        annotations:
          summary: "{{`{{ $value | humanize }}`}} handshakes per second are refused for their token."
          runbook_url: "{{ $runbook }}#realtimeauthfailureburst"
      - alert: RealtimeConnectionsNearCapacity
        expr: sum by (instance) (realtime_gateway_connections) / sum by (instance) (realtime_gateway_connection_capacity) > {{ $a.capacityRatio }}
        for: 5m
        labels: {severity: warning}
        annotations:
          summary: "Gateway {{`{{ $labels.instance }}`}} holds {{`{{ $value | humanizePercentage }}`}} of its connection capacity."
          runbook_url: "{{ $runbook }}#realtimeconnectionsnearcapacity"
      - alert: RealtimeSlowConsumerSpike
        expr: sum(rate(realtime_gateway_slow_consumer_actions_total{action="close"}[5m])) > {{ $a.slowConsumerClosesPerSecond }}
        for: 5m
        labels: {severity: warning}
        annotations:
          summary: "{{`{{ $value | humanize }}`}} connections per second are closed as slow consumers."
          runbook_url: "{{ $runbook }}#realtimeslowconsumerspike"
      - alert: RealtimeGatewayDown
        expr: up{job=~".+-gateway"} == 0
        for: 1m
        labels: {severity: critical}
        annotations:
          summary: "Gateway {{`{{ $labels.instance }}`}} does not answer scrapes; its clients reconnect elsewhere and the fanout stops routing to it when its liveness key expires."
          runbook_url: "{{ $runbook }}#realtimegatewaydown"
{{- end -}}
