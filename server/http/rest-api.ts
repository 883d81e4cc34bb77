import type { LoadedApi } from '../api/load.ts';
import type { CompiledAuthorizer } from '../auth/authorizers.ts';
import type { HttpIntegrationDeps } from './http-integrations.ts';
import { compileHttpIntegration } from './http-integrations.ts';
import type { HttpRouteRuntime } from './rest-gateway.ts';
import { compileRouteTable, type RouteTable } from './route-table.ts';
import { compileRequestValidator } from './validation.ts';

/** Compile the `http` routes of one stage: integrations, authorizers and validators, once. */
export function compileRestRoutes(
  api: LoadedApi,
  authorizers: ReadonlyMap<string, CompiledAuthorizer>,
  deps: HttpIntegrationDeps,
): RouteTable<HttpRouteRuntime> {
  const routes: Array<[string, HttpRouteRuntime]> = [];
  for (const [routeKey, def] of Object.entries(api.definition.http?.routes ?? {})) {
    const model = api.models.get(`http:${routeKey}`);
    const validateBody = def.requestValidator ? def.requestValidator === 'BODY' || def.requestValidator === 'ALL' : model !== undefined;
    const validateParams = def.requestValidator ? def.requestValidator === 'PARAMETERS' || def.requestValidator === 'ALL' : (def.requestParameters?.length ?? 0) > 0;
    const validator =
      validateBody || validateParams
        ? compileRequestValidator({
            validateRequestBody: validateBody,
            validateRequestParameters: validateParams,
            model,
            requiredParameters: def.requestParameters,
          })
        : undefined;
    routes.push([
      routeKey,
      {
        routeKey,
        integration: compileHttpIntegration(def.integration, deps),
        authorizer: def.authorizer ? authorizers.get(def.authorizer) : undefined,
        authorizationScopes: def.authorizationScopes,
        validator,
        apiKeyRequired: def.apiKeyRequired === true,
      },
    ]);
  }
  return compileRouteTable(routes);
}
