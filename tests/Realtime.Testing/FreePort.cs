using System.Net;
using System.Net.Sockets;

namespace Realtime.Testing;

/// <summary>
/// Hands out loopback TCP ports that are free at the moment of the call.
/// </summary>
/// <remarks>
/// The operating system picks the port (bind to port 0 on 127.0.0.1); the socket is then
/// closed and the port returned. A port is never handed out twice in one process, so two
/// servers a test starts never get the same port from here. Another process could still take
/// the port before the caller binds it: servers started on such a port should fail fast and be
/// retried on a new one.
/// </remarks>
public static class FreePort
{
    private const int MaxAttempts = 100;
    private static readonly HashSet<int> HandedOut = [];
    private static readonly Lock Gate = new();

    /// <summary>Returns an unused TCP port on 127.0.0.1 that this process has not handed out before.</summary>
    /// <exception cref="InvalidOperationException">No new port was found after many attempts.</exception>
    public static int Next()
    {
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var port = BindAndRelease();
            lock (Gate)
            {
                if (HandedOut.Add(port))
                {
                    return port;
                }
            }
        }

        throw new InvalidOperationException($"No unused loopback port found in {MaxAttempts} attempts.");
    }

    private static int BindAndRelease()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
