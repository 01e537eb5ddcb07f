namespace Realtime.Contracts;

/// <summary>
/// Names of a channel's epochs (the <c>epoch</c> field of its state hash). Whichever of the fanout
/// or a gateway touches a channel first writes one, only if the channel has none yet, so both
/// must mint them alike.
/// </summary>
public static class ChannelEpoch
{
    /// <summary>A fresh epoch name: time-ordered and unique, 16 hex characters.</summary>
    public static string New() => Guid.CreateVersion7().ToString("N")[..16];
}
