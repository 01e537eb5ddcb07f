using Grpc.Core;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Gateway.Auth;
using StackExchange.Redis;

namespace Realtime.Gateway.Control;

/// <summary>The gRPC <c>realtime.v1.Sessions</c> service: revocations, for callers with the <c>realtime.admin</c> role.</summary>
[BindServiceMethod(typeof(Grpc.StrictRequestBinding.Sessions), nameof(Grpc.StrictRequestBinding.Sessions.BindService))]
internal sealed class SessionsService(TokenValidator tokens, RevocationService revocations) : Sessions.SessionsBase
{
    private const int MaxSubjectLength = 256;
    private const int MaxReasonLength = 128;

    public override async Task<RevokeResponse> RevokeSessions(RevokeSessionsRequest request, ServerCallContext context)
    {
        var caller = await AuthorizeAsync(context);
        ValidateSubject(request.Subject);
        if (request.Reason.Length > MaxReasonLength)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"reason is at most {MaxReasonLength} characters."));
        }

        return await RunAsync(() => revocations.RevokeSessionsAsync(caller, request.Subject, request.Reason.Length == 0 ? "revoked" : request.Reason));
    }

    public override async Task<RevokeResponse> RevokeChannelAccess(RevokeChannelAccessRequest request, ServerCallContext context)
    {
        var caller = await AuthorizeAsync(context);
        ValidateSubject(request.Subject);
        if (!ChannelName.IsValid(request.Channel))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "Invalid channel name."));
        }

        return await RunAsync(() => revocations.RevokeChannelAccessAsync(caller, request.Subject, request.Channel));
    }

    private static void ValidateSubject(string subject)
    {
        if (string.IsNullOrWhiteSpace(subject) || subject.Length > MaxSubjectLength)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"subject must hold 1-{MaxSubjectLength} characters."));
        }
    }

    private static async Task<RevokeResponse> RunAsync(Func<Task<DateTimeOffset>> revoke)
    {
        try
        {
            return new RevokeResponse { RevokedAtUnixMs = (await revoke()).ToUnixTimeMilliseconds() };
        }
        catch (Exception e) when (e is RedisException or TimeoutException or Publishing.PublishFailedException)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "Redis or Kafka did not answer; the revocation may be partly applied. Retry: it is idempotent."));
        }
    }

    private async Task<ClientIdentity> AuthorizeAsync(ServerCallContext context)
    {
        var validation = await tokens.ValidateAsync(HandshakeToken.FromMetadata(context.RequestHeaders.GetValue("authorization")));
        var identity = validation.Identity ?? throw new RpcException(new Status(StatusCode.Unauthenticated, $"Token refused: {validation.Failure}."));
        return identity.IsAdmin
            ? identity
            : throw new RpcException(new Status(StatusCode.PermissionDenied, $"The token lacks the {ClientIdentity.AdminRole} role."));
    }
}
