namespace Realtime.Contracts;

/// <summary>
/// The one place that names every Kafka topic and Redis key of the pipeline.
/// </summary>
/// <remarks>
/// Every name is prefixed with a namespace (default <c>rt</c>) so that several
/// deployments, or several test runs, can share one Kafka cluster and one Redis
/// without seeing each other. Redis keys that belong to one channel carry the
/// channel in a hash tag (<c>{...}</c>) so that a Redis Cluster keeps all of a
/// channel's keys in one slot, which multi-key scripts on a channel need.
/// </remarks>
public sealed class PipelineNames
{
    /// <summary>The namespace used when none is configured.</summary>
    public const string DefaultNamespace = "rt";

    /// <summary>
    /// The channel that carries control events (revocations) to every gateway: each node routes
    /// it to itself at start, so the fanout delivers it everywhere like any channel. Its name is
    /// not a valid client channel name (<c>$</c>), so no client can subscribe or publish to it.
    /// </summary>
    public const string ControlChannel = "$control";

    private readonly string _routePrefix;
    private readonly string _nodePrefix;
    private readonly string _channelPrefix;

    public PipelineNames(string? @namespace = null)
    {
        Namespace = string.IsNullOrEmpty(@namespace) ? DefaultNamespace : @namespace;
        if (!NodeId.IsValid(Namespace))
        {
            throw new ArgumentException(
                $"Namespace '{Namespace}' is invalid: use 1-64 characters from [a-zA-Z0-9._-].",
                nameof(@namespace));
        }

        IngressTopic = $"{Namespace}.ingress";
        NodeTopicPrefix = $"{Namespace}.node.";
        NodesKey = $"{Namespace}:nodes";
        _routePrefix = $"{Namespace}:route:{{";
        _nodePrefix = $"{Namespace}:node:";
        _channelPrefix = $"{Namespace}:ch:{{";
        FanoutGroupId = $"{Namespace}.fanout";
    }

    public string Namespace { get; }

    /// <summary>Step 1: every published event, keyed by channel.</summary>
    public string IngressTopic { get; }

    /// <summary>Prefix of the per-node delivery topics (step 4).</summary>
    public string NodeTopicPrefix { get; }

    /// <summary>Consumer group of the fanout workers on the ingress topic (step 2).</summary>
    public string FanoutGroupId { get; }

    /// <summary>Sorted set: node id → unix ms of its last heartbeat. For operators' listings only; routing trusts <see cref="NodeAliveKey"/>.</summary>
    public string NodesKey { get; }

    /// <summary>Step 4: the delivery topic of one gateway node.</summary>
    public string NodeTopic(string nodeId) => NodeTopicPrefix + nodeId;

    /// <summary>Consumer group a gateway uses to commit its position on its own delivery topic (step 5).</summary>
    public string NodeGroupId(string nodeId) => $"{Namespace}.gateway.{nodeId}";

    /// <summary>Set of node ids that have local subscribers of <paramref name="channel"/> (step 3).</summary>
    public string RouteKey(string channel) => string.Concat(_routePrefix, channel, "}");

    /// <summary>Hash of a channel's position: <c>seq</c> (last assigned), <c>epoch</c>, and the ingress <c>partition</c> and <c>offset</c> of its last event.</summary>
    public string ChannelStateKey(string channel) => string.Concat(_channelPrefix, channel, "}:state");

    /// <summary>Sorted set: score = seq, member = ingress offset of that event. Makes sequencing idempotent and locates an event in the ingress log.</summary>
    public string ChannelIndexKey(string channel) => string.Concat(_channelPrefix, channel, "}:idx");

    /// <summary>
    /// List of envelope bytes, oldest first: the recent-events window replay is served from. Its
    /// entries are the channel's latest seqs without a gap, the last one being the state's
    /// <c>seq</c>, so entry i has seq <c>seq - length + 1 + i</c>. (It was a sorted set named
    /// <c>recent</c>; the new name keeps an old reader from getting a wrong-type error mid-upgrade.)
    /// </summary>
    public string ChannelRecentKey(string channel) => string.Concat(_channelPrefix, channel, "}:window");

    /// <summary>String with a TTL: the outcome of a publish with an idempotency key, by publisher subject and key.</summary>
    public string IdempotencyKey(string channel, string subject, string key) =>
        string.Concat(_channelPrefix, channel, "}:idem:", subject, ":", key);

    /// <summary>String key with a TTL; present while the node is alive. The fanout skips nodes without it.</summary>
    public string NodeAliveKey(string nodeId) => string.Concat(_nodePrefix, nodeId, ":alive");

    /// <summary>Set of channels a node has registered routes for, so it can clear or re-register them.</summary>
    public string NodeRoutesKey(string nodeId) => string.Concat(_nodePrefix, nodeId, ":routes");

    /// <summary>Inverse of <see cref="RouteKey"/>: the channel a route key names, or null.</summary>
    /// <summary>String: when the subject's sessions were last revoked (tokens issued before then are refused). Expires with the revocation retention.</summary>
    public string RevokedSubjectKey(string subject) => string.Concat(Namespace, ":revoked:sub:", subject);

    /// <summary>String: when the subject lost access to the channel. The channel comes first: channel names cannot hold <c>|</c>, so the key is unambiguous.</summary>
    public string RevokedChannelKey(string subject, string channel) => string.Concat(Namespace, ":revoked:ch:", channel, "|", subject);

    /// <summary>Hash: node id → how many connections the user holds on that node (the per-user cap across nodes).</summary>
    public string UserConnectionsKey(string subject) => string.Concat(Namespace, ":user:{", subject, "}:conns");

    /// <summary>Counter of the user's publishes in one second (the per-user publish rate across connections).</summary>
    public string UserPublishesKey(string subject, long unixSecond) =>
        string.Concat(Namespace, ":user:{", subject, "}:pub:", unixSecond.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Hash: what a node reports with each heartbeat (<c>connections</c>), for operators' listings.</summary>
    public string NodeStatsKey(string nodeId) => string.Concat(_nodePrefix, nodeId, ":stats");

    /// <summary>Set: the users with connections counted on this node, so a restarted node can clear its counts.</summary>
    public string NodeUsersKey(string nodeId) => string.Concat(_nodePrefix, nodeId, ":users");

    /// <summary>Pattern of every revocation key of this namespace (read once at a node's start).</summary>
    public string RevokedKeyPattern => Namespace + ":revoked:*";

    public string? ChannelOfRouteKey(string key) =>
        key.StartsWith(_routePrefix, StringComparison.Ordinal) && key.EndsWith('}')
            ? key[_routePrefix.Length..^1]
            : null;
}
