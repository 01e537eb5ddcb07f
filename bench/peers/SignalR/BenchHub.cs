using System.Text.Json;
using Microsoft.AspNetCore.SignalR;

namespace Realtime.Bench.SignalRPeer;

/// <summary>
/// The benchmark's hub: a subscriber joins the group named after its channel; a publish sends
/// <c>event(channel, payload)</c> to that group on every server through the Redis backplane.
/// </summary>
public sealed class BenchHub : Hub
{
    /// <summary>Adds the caller to the group <paramref name="channel"/>.</summary>
    public Task Subscribe(string channel) => Groups.AddToGroupAsync(Context.ConnectionId, channel);

    /// <summary>Sends <paramref name="payload"/> as <c>event(channel, payload)</c> to the group <paramref name="channel"/>.</summary>
    public Task Publish(string channel, JsonElement payload) => Clients.Group(channel).SendAsync("event", channel, payload);
}
